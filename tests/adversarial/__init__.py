"""Attacks on the store, the ledger and promotion that must stay refused."""
