"""poisonguard: a training-data poisoning gate for Airflow, the CLI and DVC."""

__version__ = "0.1.0"
