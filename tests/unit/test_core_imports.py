"""The core is importable without Airflow, and without paying for heavy libraries up front."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return {m.split(".")[0] for m in out.split()}


def test_core_imports_no_airflow_and_no_heavy_library():
    loaded = _modules_after("import poisonguard.engine.gate, poisonguard.cli, poisonguard.engine.policy, poisonguard.checks")
    for heavy in ("airflow", "great_expectations", "evidently", "dvc", "sklearn"):
        assert heavy not in loaded, f"importing the core pulled in {heavy}"


def test_nothing_is_unpickled():
    """No module of the product loads pickles: fitted state is npz/JSON (``allow_pickle=False``),
    data is Parquet, and models are refitted from trusted data rather than stored."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "poisonguard"
    unsafe = re.compile(r"\bimport pickle\b|\bfrom pickle\b|\bjoblib\b|read_pickle|allow_pickle\s*=\s*True|"
                        r"torch\.load|cloudpickle|dill\b|\bshelve\b|np\.load\((?![^)]*allow_pickle=False)")
    found = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if unsafe.search(line)]
    assert found == []
