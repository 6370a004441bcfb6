"""Gating DVC-tracked datasets (docs/dvc.md).

- :mod:`poisonguard.dvc.gating`: ``gate_dvc_path`` / ``init_dvc_path``, the mechanism behind
  ``poisonguard dvc gate|init`` and the Airflow DAG ``poisonguard_dvc_gate``;
- :mod:`poisonguard.dvc.versions`: promoted versions as git tags, the tag scheme ``poisonguard/<dataset>/{v<N>,promoted}``;
- :mod:`poisonguard.dvc.metrics`: the verdict as a flat DVC metrics file (``poisonguard dvc stage``);
- :mod:`poisonguard.dvc.example`: the example project (``poisonguard dvc example``).

Kept empty so that registering the ``dvc`` subcommand costs nothing; DVC itself is imported
only inside the functions that use it.
"""
