"""The poisonguard benchmark: ``python -m bench [--quick | --smoke]`` (see bench/README.md).

Everything here drives poisonguard through its CLI (the stable contract) and
:mod:`poisonguard.testing.attacks`; nothing imports the checks' internals.
"""
