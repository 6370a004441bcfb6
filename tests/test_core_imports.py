"""The core is importable without Airflow, and without paying for heavy libraries up front."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_core_imports_no_airflow_and_no_heavy_library():
    loaded = _modules_after("import poisonguard.gate, poisonguard.cli, poisonguard.policy, poisonguard.checks")
    for heavy in ("airflow", "great_expectations", "evidently", "dvc", "sklearn"):
        assert heavy not in loaded, f"importing the core pulled in {heavy}"
