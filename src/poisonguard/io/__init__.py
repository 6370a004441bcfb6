"""Reading inputs and writing a run's outputs (verdict, quarantine, clean rows, report)."""
