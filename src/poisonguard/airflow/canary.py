"""The canary as an Airflow task: once a week, plant attacks into pseudo-batches of a dataset's
trusted data and gate them (see :mod:`poisonguard.canary`). The task fails when clean
pseudo-batches were blocked more often than the policy's ``max_false_block_rate``; its log holds
the table, and ``<store>/<dataset>/canary/<date>.json`` every run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from poisonguard.airflow.operators import failing_without_retry, signing_key

if TYPE_CHECKING:
    from airflow.sdk import Context


class CanaryOperator(BaseOperator):
    """Run the canary on ``dataset`` of the store (its reference as of now, its holdout and label)."""

    template_fields: Sequence[str] = ("dataset", "store_root", "policy_dir")
    ui_color = "#fef7e0"

    def __init__(self, *, dataset: str, store_root: str | None = None, policy_dir: str | None = None,
                 splits: int = 5, batch_rows: int | None = None, batches_per_split: int = 1,
                 attacks: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**{"retries": 0, **kwargs})
        self.dataset, self.store_root, self.policy_dir = dataset, store_root, policy_dir
        self.splits, self.batch_rows, self.attacks = splits, batch_rows, attacks
        self.batches_per_split = batches_per_split

    def execute(self, context: Context) -> dict[str, Any]:
        from poisonguard.airflow import locations
        from poisonguard.canary import run_canary
        from poisonguard.store.dataset import DatasetStore

        with failing_without_retry():
            store = DatasetStore(locations.store_root(self.store_root or None), self.dataset, key=signing_key())
            report = run_canary(store.reference_path(), store.label, holdout=store.holdout_path,
                                policy=locations.default_policy(self.dataset, self.policy_dir or None),
                                splits=self.splits, batch_rows=self.batch_rows,
                                batches_per_split=self.batches_per_split, attack_names=self.attacks,
                                dataset=self.dataset, progress=self.log.info)
        out = store.path / "canary" / f"{context['ds']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
        for line in report.table().splitlines():
            self.log.info("%s", line)
        if not report.passed:
            message = (f"{self.dataset}: the gate blocked {report.false_block_rate:.1%} of clean pseudo-batches, above "
                       f"the policy's max_false_block_rate of {report.max_false_block_rate:.1%}; see {out}")
            self.log.error("%s", message)
            raise AirflowFailException(message)
        return {"dataset": self.dataset, "false_block_rate": report.false_block_rate, "report": str(out)}
