"""Helpers the tests share: seeded data, the fast policy, real Airflow and real DVC projects."""
