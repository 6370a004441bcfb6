"""Provenance: file SHA-256s, per-row hashes and their root, a schema fingerprint; duplicates and replay.

How rows and files are hashed (and the rows root) is :mod:`poisonguard.kernel.hashing`: the
store and promotion hash with the same functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.kernel.context import GateContext
from poisonguard.kernel.hashing import canonical_block, hash_files, row_keys, rows_root, schema_fingerprint
from poisonguard.kernel.parts import Fitted, PartScores
from poisonguard.kernel.results import UNCALIBRATED, CheckResult, Finding, Severity, null_of, uncalibrated
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import p_text, pseudo_batch_p_value, rate_exceeds

NAME = "provenance"
PHASE = "rows"
HEADLINE = "repeated_fraction"  # share of the batch that repeats trusted or earlier rows
CODES: dict[str, Severity] = {
    "duplicate_row": Severity.QUARANTINE,
    "replayed_row": Severity.QUARANTINE,
    "replay_label_conflict": Severity.QUARANTINE,
    "duplicate_fraction_exceeded": Severity.BLOCK,
    UNCALIBRATED: Severity.WARN,
}


class Spec(CheckSpec):
    max_natural_duplicate_fraction: float = Field(
        0.01, ge=0, le=1,
        description="If more than this share of the reference's own rows repeat a trusted feature "
        "vector, exact repeats are natural for this dataset and are not flagged row by row.",
    )
    min_excess_fraction: float = Field(
        0.005, ge=0, le=1,
        description="Block only when the batch's share of repeated rows exceeds the reference's own by this much...",
    )
    max_p_value: float = Field(
        1e-4, gt=0, lt=1, description="...and a one-sided test puts it below this p-value (both against the "
        "reference's own repeat rate and against pseudo-batches of trusted rows).",
    )
    null_batches: int = Field(
        200, ge=0, le=10_000,
        description="Pseudo-batches of trusted rows, at the batch's size, whose repeats against the rest of the "
        "trusted rows form the empirical null (0: only the test against the reference's rate).")


def feature_and_row_keys(frame: pd.DataFrame, ctx: GateContext) -> tuple[np.ndarray, np.ndarray]:
    """Keys of each row's features, and of its features and label."""
    feats = canonical_block(frame, ctx.feature_columns)
    full = np.hstack([feats, canonical_block(frame, [ctx.label])])
    return row_keys(feats), row_keys(full)


def describe(ctx: GateContext, digests: np.ndarray, frame_columns: pd.DataFrame) -> dict[str, object]:
    """The provenance block of the verdict: file hashes, rows root, schema fingerprint.

    ``digests`` are the batch's SHA-256 row digests over all its columns (:func:`hash_rows`);
    ``frame_columns`` is any part of the batch (only its columns and dtypes are read)."""
    return {
        "incoming_sha256": hash_files(ctx.sources.get("incoming", ())),
        "reference_sha256": hash_files(ctx.sources.get("reference", ())),
        "holdout_sha256": hash_files(ctx.sources.get("holdout", ())),
        "incoming_files": [str(p) for p in ctx.sources.get("incoming", ())],
        "rows_root": rows_root(digests),
        "row_hash": "sha256 over canonical row values (numbers as float64), columns in reference order",
        "schema_fingerprint": schema_fingerprint(frame_columns, ctx.label),
        "rows": len(digests),
    }


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """Keys of every trusted row (reference and holdout), and how repetitive trusted data is."""
    trusted = pd.concat([ctx.reference, ctx.holdout], ignore_index=True)
    ref_feat, ref_full = feature_and_row_keys(trusted, ctx)
    n = len(trusted)
    natural_dup = float(pd.Series(ref_feat).duplicated(keep=False).mean()) if n else 0.0
    ref_conflict = (natural_dup - float(pd.Series(ref_full).duplicated(keep=False).mean())) if n else 0.0
    feature_keys, feature_group = np.unique(ref_feat, return_inverse=True)
    row_keys_, row_group = np.unique(ref_full, return_inverse=True)
    return Fitted({"natural_duplicate_fraction": natural_dup, "natural_conflict_fraction": ref_conflict,
                   "trusted_rows": n},
                  {"feature_keys": feature_keys, "row_keys": row_keys_,
                   "feature_group": feature_group.astype(np.int64), "row_group": row_group.astype(np.int64)})


def null_repeats(fitted: Fitted, n: int, draws: int, seed: int) -> tuple[np.ndarray, int]:
    """Repeated rows in ``draws`` pseudo-batches of trusted rows (at most half of them), each
    counted exactly as a batch's are — repeats within it (features and label) or features that
    the rest of the trusted rows hold — and the pseudo-batch size. The rest is smaller than the
    pool a real batch meets, so each count is raised by the shortfall of the in-pool rate against
    the reference's own (its rows repeating any other trusted row)."""
    feature_group, row_group = fitted.arrays["feature_group"], fitted.arrays["row_group"]
    total = len(feature_group)
    size = min(n, total // 2)
    if size < 1 or draws < 2:
        return np.zeros(0), size
    group_size = np.bincount(feature_group)
    rng = np.random.default_rng(seed)
    counts, in_pool_rates = np.empty(draws), np.empty(draws)
    for d in range(draws):
        rows = rng.choice(total, size, replace=False)
        groups = feature_group[rows]
        in_pool = np.bincount(groups, minlength=len(group_size))[groups] < group_size[groups]
        repeat = np.ones(size, dtype=bool)
        repeat[np.unique(row_group[rows], return_index=True)[1]] = False
        counts[d], in_pool_rates[d] = np.sum(in_pool | repeat), in_pool.mean()
    shortfall = max(0.0, fitted.meta["natural_duplicate_fraction"] - float(in_pool_rates.mean()))
    return counts + shortfall * size, size


def _isin_sorted(keys: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    if not len(sorted_unique):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_unique, keys), len(sorted_unique) - 1)
    return sorted_unique[at] == keys


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Per row: its keys (for repeats within the batch) and whether trusted data holds its
    features, and its features with this label."""
    feat, full = feature_and_row_keys(frame, ctx)
    return PartScores(len(frame), {"row_key": full,
                                   "trusted_features": _isin_sorted(feat, fitted.arrays["feature_keys"]),
                                   "trusted_row": _isin_sorted(full, fitted.arrays["row_keys"])})


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    """Exact repeats within the batch and replays of trusted rows.

    Score per row: 1 for a replay with a conflicting label, 0.5 for another repeat, else 0.
    """
    n = scores.n
    natural_dup = fitted.meta["natural_duplicate_fraction"]
    natural = natural_dup > spec.max_natural_duplicate_fraction
    dup = pd.Series(scores.rows["row_key"]).duplicated(keep="first").to_numpy()
    in_ref_feat, in_ref_full = scores.rows["trusted_features"], scores.rows["trusted_row"]
    conflict = in_ref_feat & ~in_ref_full
    replay = in_ref_full & ~dup

    findings: list[Finding] = []
    if not natural:
        if dup.any():
            findings.append(Finding.at_rows(NAME, "duplicate_row",
                f"{int(dup.sum())} row(s) repeat an earlier row of the batch exactly", np.flatnonzero(dup)))
        if replay.any():
            findings.append(Finding.at_rows(NAME, "replayed_row",
                f"{int(replay.sum())} row(s) are exact copies of trusted rows", np.flatnonzero(replay)))
    if conflict.any() and fitted.meta["natural_conflict_fraction"] <= spec.max_natural_duplicate_fraction:
        findings.append(Finding.at_rows(NAME, "replay_label_conflict",
            f"{int(conflict.sum())} row(s) copy a trusted row's features with a different label",
            np.flatnonzero(conflict)))
    repeated = dup | replay | conflict
    count = int(repeated.sum())
    exceeded, p_value = rate_exceeds(count, n, natural_dup, reference_n=fitted.meta["trusted_rows"],
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    # The same count against pseudo-batches of trusted rows; the batch must be unusual for both.
    # Trusted data and the batch's size decide them: kept in the fitted state.
    def null() -> Fitted:
        counts, size = null_repeats(fitted, n, spec.null_batches, ctx.seed)
        return Fitted({"rows": size}, {"counts": counts})

    kept = ctx.persisted("provenance.null", (spec.fit_parameters(), n), null)
    null_counts, null_n = kept.arrays["counts"], int(kept.meta["rows"])
    null_p = pseudo_batch_p_value(count, n, null_counts, null_n) if len(null_counts) else p_value
    p_value = max(p_value, null_p)
    exceeded = exceeded and p_value < spec.max_p_value
    if exceeded:
        findings.append(Finding.at_rows(NAME, "duplicate_fraction_exceeded",
            f"{repeated.mean():.1%} of the batch repeats trusted or earlier rows; the reference's own "
            f"repeat rate is {natural_dup:.1%} ({p_text(p_value)})", [], value=float(repeated.mean()),
            threshold=natural_dup + spec.min_excess_fraction,
            null=null_of("repeats in pseudo-batches of trusted rows counted as a batch's are (moment-matched "
                         "beta-binomial), and the reference's own repeat rate", len(null_counts), p_value,
                         spec.max_p_value, rows=null_n)))
    if spec.null_batches:
        note = uncalibrated(NAME, "the repeated-rows test", null_n if len(null_counts) else 0, n,
                            int(fitted.meta["trusted_rows"]),
                            "its pseudo-batch null is extrapolated to the batch's size (beta-binomial) and the test "
                            "against the reference's own repeat rate still applies")
        findings += [note] if note else []
    scores_out = np.where(conflict, 1.0, np.where(dup | replay, 0.5, 0.0))
    metrics = {
        "duplicate_rows": int(dup.sum()),
        "replayed_rows": int(replay.sum()),
        "replay_label_conflicts": int(conflict.sum()),
        "repeated_fraction": float(repeated.mean()) if n else 0.0,
        "reference_repeat_fraction": natural_dup,
        "repeats_are_natural": natural,
        "p_value": p_value,
        "null": {"pseudo_batches": len(null_counts), "rows": null_n,
                 "mean_fraction": float(null_counts.mean() / null_n) if len(null_counts) else None,
                 "p_value": null_p},
    }
    return CheckResult(NAME, tuple(findings), metrics, scores_out)
