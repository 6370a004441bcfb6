"""For plug-in authors and test suites: the contract every check passes (:func:`check_contract`)
and seeded poisoning attacks with ground truth (:mod:`poisonguard.testing.attacks`)."""

from poisonguard.testing.contract import check_contract

__all__ = ["check_contract"]
