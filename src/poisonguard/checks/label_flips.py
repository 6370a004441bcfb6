"""Label flips: rows whose label disagrees with what trusted data says about their features.

Two complementary signals, both learned from the reference only:

- *model*: the probability a classifier gives the row's label. Each reference row is scored by
  the model fitted on the other folds (out-of-fold), and each batch row by one of those same fold
  models, picked by a hash of its values: a batch row meets a model fitted on as many trusted rows
  as a reference row does, so the reference's scores are the null the batch's are compared with
  (no model fitted on all of it, whose scores differ from every fold model's: a clean split of
  nycflights13 flagged 0.25% of its batch against the reference's 0.09% with one, 0.10% with
  the fold models). With
  ``model: auto`` a logistic regression and a gradient-boosted model are both cross-validated
  on the reference and the one with the lower out-of-fold log-loss is used;
- *neighbours*: the share of the row's k nearest trusted neighbours that carry its label.

A row's score is ``1 - (p_model + p_neighbours) / 2`` for its given label: 0 = everything agrees
with the label, 1 = nothing does (the higher, the more suspicious). Rows the model alone is sure
of (``p_model >= clear_probability``) score ``1 - p_model`` and skip the costly neighbour look-up;
the reference is scored by the same rule, so the two stay comparable.

A doubted row that lies closer to a trusted row of another class than the reference's own doubted
rows come to theirs (``near_copy_quantile`` of those distances; exact repeats are provenance's)
nearly copies that row with a changed label: it scores 1, the most doubtful a row can. Jittered
copies of trusted rows relabelled (a class-prior shift that hides its wrong labels) are caught
this way where the model alone is too weak to tell; the reference's own rows meet the same rule,
so its flagged share, which the batch is tested against, counts them too.

Each row's score becomes a conformal p-value against the reference's own scores for its class:
the share of trusted rows of that class that look at least as doubtful. A row is flagged when
its score is above its class's high reference quantile, or when the Benjamini-Hochberg
procedure over the batch's p-values selects it (false discoveries at most
``max_false_discovery_fraction`` of the rows flagged). On a clean batch the p-values are uniform
and almost nothing is selected; the more flips a batch holds, the further the selection reaches.

Where labels are noisy by nature (credit data, crowd labels), few flips stand out row by row, so
the batch is also tested as a whole: its *surprise* (``1 / p_model`` of each row's label, floored
at ``SURPRISE_FLOOR``) is the score test for "a share ε of the labels was changed", and its mean
against the reference's own out-of-fold surprises gives both a p-value (bootstrapped on small
batches: the statistic is skewed) and an estimate of ε (the reference also says what surprise a
changed label brings). On the committed credit data its z-score is 3.4 and 4.4 for 5% and 10%
random flips, where the mean model doubt gave 1.5 and 2.2; clean batches stay within |z| < 2.1 on
every committed dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from poisonguard.kernel.batch import sample_positions
from poisonguard.kernel.context import GateContext
from poisonguard.kernel.models import classifier, model_arrays, model_from_arrays, side_by_side
from poisonguard.kernel.parts import Fitted, PartScores
from poisonguard.kernel.results import CheckResult, Finding, Severity, null_of, reference_quantiles
from poisonguard.kernel.spec import CheckSpec
from poisonguard.kernel.stats import mean_excess_p_value, p_text, rate_exceeds, rate_excess_p_value

NAME = "label_flips"
PHASE = "rows"
HEADLINE = "changed_label_estimate"  # estimated share of changed labels among the rows it would promote
CODES: dict[str, Severity] = {
    "label_flip": Severity.QUARANTINE,
    "flip_fraction_exceeded": Severity.BLOCK,
    "label_disagreement_exceeded": Severity.BLOCK,
    "targeted_flip": Severity.BLOCK,
}
Model = Literal["auto", "logistic", "gradient_boosting"]
# Model probabilities below this count as this in the surprise 1/p: one row cannot dominate the mean.
SURPRISE_FLOOR = 0.05


def _surprise(probability: np.ndarray) -> np.ndarray:
    """``1 / p``, with ``p`` floored at :data:`SURPRISE_FLOOR`."""
    return 1.0 / np.clip(probability, SURPRISE_FLOOR, 1.0)


class Spec(CheckSpec):
    model: Model = Field(
        "auto", description="Classifier giving the model signal; 'auto' picks, per dataset, the one with the lower "
        "out-of-fold log-loss on the reference.")
    n_neighbors: int = Field(10, ge=1, le=200, description="Trusted neighbours consulted per row.")
    n_folds: int = Field(5, ge=2, le=20, description="Folds for the out-of-fold scores on the reference.")
    clear_probability: float = Field(
        0.5, gt=0, le=1,
        description="Rows whose label gets at least this model probability skip the neighbour look-up.")
    reference_quantile: float = Field(
        0.998, gt=0.5, lt=1,
        description="Flag a row whose score is above this quantile of the reference's own scores for its class...")
    min_threshold: float = Field(0.5, ge=0, le=1, description="...but never below this (the signals must disagree)...")
    max_threshold: float = Field(
        0.99, ge=0, le=1, description="...and never above this (so a very noisy reference still flags something).")
    near_copy_quantile: float = Field(
        0.01, ge=0, lt=1,
        description="A row the model doubts that lies closer to a trusted row of another class than this quantile "
        "of the reference's own doubted rows' nearest-neighbour distances (exact repeats aside) is a near copy "
        "with a changed label: it is flagged (0: off).")
    max_false_discovery_fraction: float = Field(
        0.1, gt=0, lt=1,
        description="Also flag the rows the Benjamini-Hochberg procedure selects at this false discovery rate.")
    min_class_rows: int = Field(
        200, ge=1, description="Classes with fewer reference rows use the pooled reference scores of all classes.")
    max_fit_rows: int = Field(20_000, ge=100, description="Reference rows used to fit (seeded sample above this).")
    tail_fraction: float = Field(
        0.05, gt=0, lt=0.5,
        description="Label disagreement test: the share of rows more doubtful than this tail of the reference...")
    min_excess_fraction: float = Field(
        0.03, ge=0, le=1,
        description="Block when the batch's flagged share (or its tail share, or its estimated share of changed "
        "labels) exceeds the reference's own by this much (below it, flagged rows are quarantined and the rest "
        "promoted)...")
    max_p_value: float = Field(
        1e-3, gt=0, lt=1, description="...and a one-sided test puts it below this p-value.")
    min_targeted_share: float = Field(
        0.6, gt=0, le=1,
        description="Call it a targeted flip when one (given, predicted) pair holds this share of flagged rows...")
    min_targeted_rows: int = Field(3, ge=1, description="...and at least this many rows, significantly above its reference rate.")


def _proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all reference classes (a fold may lack one)."""
    out = np.zeros((len(x), n_classes))
    if len(x):
        out[:, model.classes_] = model.predict_proba(x)
    return out


def _training_set(ctx: GateContext, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """The reference rows the detectors learn from (a seeded sample above ``max_fit_rows``)."""
    def pick() -> tuple[np.ndarray, np.ndarray]:
        x, y = ctx.encode(ctx.reference), ctx.label_codes(ctx.reference)
        if len(x) > spec.max_fit_rows:
            keep = sample_positions(len(x), spec.max_fit_rows, ctx.seed)
            x, y = x[keep], y[keep]
        return x, y
    return ctx.cached(("label_flips.training_set", spec.max_fit_rows), pick)


def _fit_folds(kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, spec: Spec, seed: int) -> tuple[list, list]:
    """The reference's stratified folds and a model fitted without each, side by side (none when a
    class is too small to split: no out-of-fold model, neighbours decide)."""
    from sklearn.model_selection import StratifiedKFold

    folds = min(spec.n_folds, int(np.bincount(y, minlength=n_classes)[np.unique(y)].min()))
    splits = [] if folds < 2 else list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))

    def fit_one(train: np.ndarray) -> Callable[[], object]:
        return lambda: classifier(kind, seed).fit(x[train], y[train])
    return splits, side_by_side([fit_one(train) for train, _ in splits])


def _fold_models(kind: str, ctx: GateContext, spec: Spec, kept: Fitted | None = None,
                 fitted_now: list | None = None):
    """The fold models (each fitted on the reference without one fold) and the neighbour index,
    once per process: the models are ``fitted_now`` by :func:`fit`, else rebuilt from the numbers
    ``kept`` holds, else refitted (deterministically); the brute-force neighbour index is the
    encoded reference itself."""
    def fit_all():
        from sklearn.neighbors import NearestNeighbors

        x, y = _training_set(ctx, spec)
        k = min(spec.n_neighbors, len(x) - 1)
        n_kept = int(kept.meta.get("fold_models", 0)) if kept is not None else 0
        if fitted_now is not None:
            models = fitted_now
        elif n_kept:
            models = [model_from_arrays(kind, ctx.seed, {n.removeprefix(f"fold{i}/"): a
                                                         for n, a in kept.arrays.items() if n.startswith(f"fold{i}/")})
                      for i in range(n_kept)]
        else:
            _, models = _fit_folds(kind, x, y, len(ctx.classes), spec, ctx.seed)
        return models, NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x), k
    return ctx.cached(("label_flips.models", kind, spec.max_fit_rows, spec.n_neighbors, spec.n_folds), fit_all)


def fold_of(x: np.ndarray, n_folds: int) -> np.ndarray:
    """Which fold model scores each batch row: a hash of the row's encoded values, so a row meets
    the same model in every run, in any batch, in any order, and a random row a random fold
    model, as a reference row does its out-of-fold one."""
    h = np.full(len(x), 0xCBF29CE484222325, dtype=np.uint64)
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    for j in range(bits.shape[1] if bits.ndim == 2 else 0):
        h = (h ^ bits[:, j]) * np.uint64(0x100000001B3)  # FNV-1a over the row's 64-bit words
    h ^= h >> np.uint64(31)
    return (h % np.uint64(max(n_folds, 1))).astype(np.int64)


def _fold_proba(models: list, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Each row's class probabilities from the fold model :func:`fold_of` picks for it (uniform
    when the reference had no folds: its own rows were scored so too)."""
    out = np.full((len(x), n_classes), 1.0 / n_classes)
    if models and len(x):
        which = fold_of(x, len(models))
        for i, model in enumerate(models):
            rows = np.flatnonzero(which == i)
            out[rows] = _proba(model, x[rows], n_classes)
    return out


def _neighbour_share(index, y_fit: np.ndarray, x: np.ndarray, k: int, given: np.ndarray, n_classes: int,
                     skip_self: bool) -> tuple[np.ndarray, ...]:
    """Share of each row's k nearest trusted rows that carry its given label, the most common
    label among them, and the distance and label of the nearest one. ``skip_self`` leaves the
    row itself out (scoring the reference)."""
    share, top = np.zeros(len(x)), np.zeros(len(x), dtype=np.int64)
    nearest, nearest_label = np.zeros(len(x)), np.zeros(len(x), dtype=np.int64)
    for start in range(0, len(x), 10_000):
        chunk = slice(start, start + 10_000)
        dist, idx = index.kneighbors(x[chunk], n_neighbors=k + int(skip_self))
        dist, idx = dist[:, int(skip_self):], idx[:, int(skip_self):]
        labels = y_fit[idx]
        counts = np.stack([(labels == c).sum(axis=1) for c in range(n_classes)], axis=1)
        share[chunk] = counts[np.arange(len(labels)), given[chunk]] / k
        top[chunk] = counts.argmax(axis=1)
        nearest[chunk], nearest_label[chunk] = dist[:, 0], labels[:, 0]
    return share, top, nearest, nearest_label


def _score_rows(p_model: np.ndarray, given: np.ndarray, clear_probability: float, neighbours,
                near_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (higher = more doubtful label), predicted labels and near copies, one rule for every row.

    ``neighbours(rows)`` returns ``(share of the given label, top label, distance and label of
    the nearest)`` among the trusted neighbours of ``rows``; it is only asked about rows the model
    does not clear. A doubted row within ``near_distance`` (but not at 0: exact repeats are
    provenance's) of a trusted row of another class is a near copy with a changed label: it
    scores 1, and that row's class is its predicted label."""
    rows = np.arange(len(given))
    m = p_model[rows, given]
    scores = 1.0 - m
    predicted = p_model.argmax(axis=1)
    near = np.zeros(len(given), dtype=bool)
    need = np.flatnonzero(m < clear_probability)
    if len(need):
        share, top, nearest, nearest_label = neighbours(need)
        scores[need] = 1.0 - (m[need] + share) / 2
        # The predicted label of a doubtful row: the most likely class under both signals.
        mixed = p_model[need].copy()
        mixed[np.arange(len(need)), top] += 1.0
        predicted[need] = mixed.argmax(axis=1)
        copies = (nearest > 0) & (nearest <= near_distance) & (nearest_label != given[need])
        near[need[copies]] = True
        scores[need[copies]], predicted[need[copies]] = 1.0, nearest_label[copies]
    return scores, predicted, near


def near_copy_distance(nearest: np.ndarray, quantile: float) -> float:
    """The distance within which a doubted row nearly copies a trusted row: ``quantile`` of the
    distances ``nearest`` from the reference's doubted rows to their nearest other trusted row,
    exact repeats aside (0, no near copies, when the quantile is 0 or there is no such row)."""
    nearest = nearest[nearest > 0]
    return float(np.quantile(nearest, quantile)) if quantile > 0 and len(nearest) else 0.0


def _out_of_fold(kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, spec: Spec,
                 seed: int) -> tuple[np.ndarray, list]:
    """Each reference row's class probabilities from the model fitted without its fold, and the fold models."""
    out = np.full((len(x), n_classes), 1.0 / n_classes)
    splits, models = _fit_folds(kind, x, y, n_classes, spec, seed)
    for (_, test), model in zip(splits, models, strict=True):
        out[test] = _proba(model, x[test], n_classes)
    return out, models


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-6, 1.0))))


def fit(spec: Spec, ctx: GateContext) -> Fitted:
    """Out-of-fold scores of every reference row, the per-class thresholds and everything the
    batch-level tests compare against."""
    n_classes = len(ctx.classes)
    x, y = _training_set(ctx, spec)
    kinds = ["logistic", "gradient_boosting"] if spec.model == "auto" else [spec.model]
    fitted = {kind: _out_of_fold(kind, x, y, n_classes, spec, ctx.seed) for kind in kinds}
    oof = {kind: p for kind, (p, _) in fitted.items()}
    losses = {kind: _log_loss(p, y) for kind, p in oof.items()}
    kind = min(kinds, key=lambda k: (losses[k], k))
    models, index, k = _fold_models(kind, ctx, spec, fitted_now=fitted[kind][1])
    try:  # the fold models as numbers: scoring processes and later runs rebuild them instead of refitting
        kept = {f"fold{i}/{n}": a for i, m in enumerate(models) for n, a in model_arrays(kind, m).items()}
    except ValueError:
        kept = {}

    doubted = np.flatnonzero(oof[kind][np.arange(len(y)), y] < spec.clear_probability)
    looked_up = _neighbour_share(index, y, x[doubted], k, y[doubted], n_classes, skip_self=True)
    near_distance = near_copy_distance(looked_up[2], spec.near_copy_quantile)
    ref_scores, ref_predicted, ref_near = _score_rows(oof[kind], y, spec.clear_probability,
                                                      lambda rows: looked_up, near_distance)
    pooled = float(np.quantile(ref_scores, spec.reference_quantile))
    thresholds = np.full(n_classes, pooled)
    own_class = np.zeros(n_classes, dtype=bool)
    for c in range(n_classes):
        if np.sum(y == c) >= spec.min_class_rows:
            thresholds[c] = float(np.quantile(ref_scores[y == c], spec.reference_quantile))
            own_class[c] = True
    thresholds = np.clip(thresholds, spec.min_threshold, spec.max_threshold)
    ref_flagged = ref_scores > thresholds[y]
    # How often the reference itself shows each (given, predicted) pair among its flagged rows.
    pair_counts = np.zeros((n_classes, n_classes))
    np.add.at(pair_counts, (y[ref_flagged], ref_predicted[ref_flagged]), 1)
    surprise_all = _surprise(oof[kind])
    surprise = surprise_all[np.arange(len(y)), y]
    # The surprise a reference row would bring had its label been changed to another class.
    changed = (surprise_all.sum(axis=1) - surprise) / max(n_classes - 1, 1)
    tail_cut = float(np.quantile(ref_scores, 1 - spec.tail_fraction))
    return Fitted(
        {"model": kind, "log_loss": losses, "fold_models": len(models) if kept else 0,
         "reference_flagged_fraction": float(ref_flagged.mean()),
         "changed_label_surprise": float(changed.mean()), "near_distance": near_distance,
         "reference_near_copy_fraction": float(ref_near.mean()),
         "tail_score": tail_cut, "reference_tail_fraction": float(np.mean(ref_scores > tail_cut))},
        {"thresholds": thresholds, "own_class": own_class, "class_rows": np.bincount(y, minlength=n_classes),
         "reference_surprise": surprise,
         "reference_scores": ref_scores, "reference_labels": y, "pair_counts": pair_counts, **kept})


def conformal_p_values(scores: np.ndarray, given: np.ndarray, fitted: Fitted) -> np.ndarray:
    """Per row, ``(1 + trusted rows at least as doubtful) / (1 + trusted rows)``, among the
    reference rows of its class (all classes pooled for small ones). The lower, the more
    unusual the row's label is for trusted data."""
    ref, ref_y = fitted.arrays["reference_scores"], fitted.arrays["reference_labels"]
    own = fitted.arrays["own_class"]
    out = np.ones(len(scores))
    pooled = np.sort(ref)
    groups = [(c, np.sort(ref[ref_y == c])) for c in range(len(own)) if own[c]]
    mask = np.ones(len(scores), dtype=bool)
    for c, ref_c in groups:
        rows = given == c
        mask &= ~rows
        out[rows] = (1 + len(ref_c) - np.searchsorted(ref_c, scores[rows], side="left")) / (1 + len(ref_c))
    out[mask] = (1 + len(pooled) - np.searchsorted(pooled, scores[mask], side="left")) / (1 + len(pooled))
    return out


def score(frame: pd.DataFrame, fitted: Fitted, spec: Spec, ctx: GateContext) -> PartScores:
    """Per row: score, conformal p-value, predicted label, the model's doubt, and its label code
    (-1 for a label the reference lacks: the schema check reports those)."""
    n_classes = len(ctx.classes)
    models, index, k = _fold_models(fitted.meta["model"], ctx, spec, fitted)
    _, y_fit = _training_set(ctx, spec)
    y = ctx.label_codes(frame)
    known = np.flatnonzero(y >= 0)
    x = ctx.encode(frame)[known]
    yk = y[known]
    p_model = _fold_proba(models, x, n_classes)

    def neighbours(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return _neighbour_share(index, y_fit, x[rows], k, yk[rows], n_classes, skip_self=False)

    s, predicted, near = _score_rows(p_model, yk, spec.clear_probability, neighbours,
                                     fitted.meta.get("near_distance", 0.0))
    out = {"score": np.zeros(len(frame)), "p_value": np.ones(len(frame)), "predicted": np.full(len(frame), -1),
           "label": y, "doubt": np.zeros(len(frame)), "near_copy": np.zeros(len(frame), dtype=bool)}
    out["score"][known], out["predicted"][known], out["near_copy"][known] = s, predicted, near
    out["p_value"][known] = conformal_p_values(s, yk, fitted)
    out["doubt"][known] = 1.0 - p_model[np.arange(len(known)), yk]
    return PartScores(len(frame), out)


def benjamini_hochberg(p_values: np.ndarray, fdr: float) -> np.ndarray:
    """Boolean mask of the p-values the Benjamini-Hochberg procedure rejects at ``fdr``."""
    n = len(p_values)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p_values, kind="stable")
    passed = np.flatnonzero(p_values[order] <= fdr * np.arange(1, n + 1) / n)
    mask = np.zeros(n, dtype=bool)
    if len(passed):
        mask[order[: passed[-1] + 1]] = True
    return mask


def summarize(scores: PartScores, fitted: Fitted, spec: Spec, ctx: GateContext) -> CheckResult:
    classes = ctx.classes
    y = scores.rows["label"]
    known = np.flatnonzero(y >= 0)
    yk, s = y[known], scores.rows["score"][known]
    p_values, predicted, doubt = scores.rows["p_value"][known], scores.rows["predicted"][known], \
        scores.rows["doubt"][known]
    thresholds = fitted.arrays["thresholds"]
    over_threshold = s > thresholds[yk]
    selected = benjamini_hochberg(p_values, spec.max_false_discovery_fraction)
    flagged_k = over_threshold | selected
    near_copies = int(np.sum(scores.rows["near_copy"][known]))
    flagged = known[flagged_k]
    n_known = max(len(known), 1)
    meta = fitted.meta

    ref_flag_fraction = meta["reference_flagged_fraction"]
    n_ref = len(fitted.arrays["reference_scores"])
    exceeded, p_value = rate_exceeds(len(flagged), n_known, ref_flag_fraction, reference_n=n_ref,
                                     min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value)
    # Where labels are noisy by nature, few flips stand out row by row, but the batch as a whole
    # still disagrees with trusted data more than the reference does: more rows in the reference's
    # most doubtful tail, and a higher mean surprise. Two tests, each at half the p-value budget,
    # over every row; the excess that must clear min_excess_fraction is that of the rows it would
    # promote, against the reference's rows under their class's threshold: flips caught row by row
    # are quarantined, and a few of them are no reason to block the rest.
    ref_scores, ref_surprises = fitted.arrays["reference_scores"], fitted.arrays["reference_surprise"]
    ref_kept = ref_scores <= thresholds[fitted.arrays["reference_labels"]]
    if not ref_kept.any():
        ref_kept = np.ones(len(ref_kept), dtype=bool)
    unflagged = ~flagged_k
    n_kept = max(int(unflagged.sum()), 1)
    in_tail = int(np.sum(s > meta["tail_score"]))
    _, tail_p = rate_exceeds(in_tail, n_known, meta["reference_tail_fraction"], reference_n=n_ref,
                             min_excess_fraction=spec.min_excess_fraction, max_p_value=spec.max_p_value / 2)
    kept_tail = float(np.sum(s[unflagged] > meta["tail_score"])) / n_kept
    ref_kept_tail = float(np.mean(ref_scores[ref_kept] > meta["tail_score"]))
    tail_exceeded = kept_tail > ref_kept_tail + spec.min_excess_fraction and tail_p < spec.max_p_value / 2
    ref_surprise = float(ref_surprises.mean())
    surprises = _surprise(1.0 - doubt)
    mean_surprise = float(surprises.mean()) if len(known) else ref_surprise
    surprise_p = mean_excess_p_value(ref_surprises, mean_surprise, len(known), seed=ctx.seed, two_sample=True)
    ref_kept_surprise = float(ref_surprises[ref_kept].mean())
    kept_surprise = float(surprises[unflagged].mean()) if unflagged.any() else ref_kept_surprise
    changed_share = (kept_surprise - ref_kept_surprise) / max(meta["changed_label_surprise"] - ref_kept_surprise,
                                                               1e-12)
    changed_exceeded = changed_share > spec.min_excess_fraction and surprise_p < spec.max_p_value / 2
    pairs = _pair_table(yk[flagged_k], predicted[flagged_k], yk, fitted, classes, spec)

    findings = []
    if len(flagged):
        findings.append(Finding.at_rows(NAME, "label_flip",
            f"{len(flagged)} row(s) carry a label their trusted neighbours and the reference model disagree with "
            f"({int(over_threshold.sum())} beyond their class's reference threshold, {int(selected.sum())} selected "
            f"at a {spec.max_false_discovery_fraction:.0%} false discovery rate"
            + (f"; {near_copies} nearly copy a trusted row of another class)" if near_copies else ")"), flagged))
    if exceeded:
        findings.append(Finding.at_rows(NAME, "flip_fraction_exceeded",
            f"{len(flagged) / n_known:.1%} of the batch look relabelled; the reference's own share is "
            f"{ref_flag_fraction:.2%} ({p_text(p_value)})", [], value=len(flagged) / n_known,
            threshold=ref_flag_fraction + spec.min_excess_fraction,
            null=null_of("flagged share of the reference's out-of-fold-scored rows (beta-binomial)", n_ref, p_value,
                         spec.max_p_value)))
    elif tail_exceeded or changed_exceeded:
        findings.append(Finding.at_rows(NAME, "label_disagreement_exceeded",
            f"the batch's labels disagree with trusted data more than the reference's own do (mean surprise "
            f"{mean_surprise:.2f} against {ref_surprise:.2f}, {p_text(surprise_p)}; {in_tail / n_known:.1%} of rows "
            f"in the reference's most doubtful {meta['reference_tail_fraction']:.0%}, {p_text(tail_p)}), and not "
            f"only in the rows quarantined: an estimated {max(changed_share, 0.0):.1%} of the rows it would promote "
            f"look changed, {kept_tail:.1%} of them in that tail against {ref_kept_tail:.1%} of the reference's", [],
            value=max(changed_share, 0.0), threshold=spec.min_excess_fraction,
            null=null_of("tail share (beta-binomial) and mean surprise (two-sample bootstrap) of the reference's "
                         "out-of-fold-scored rows", n_ref, min(tail_p, surprise_p), spec.max_p_value / 2)))
    top = pairs[0] if pairs else None
    if top and top["significant"] and top["share_of_flagged"] >= spec.min_targeted_share:
        findings.append(Finding.at_rows(NAME, "targeted_flip",
            f"{top['flagged']} of {len(flagged)} flagged rows are labelled '{top['given']}' but look like "
            f"'{top['predicted']}' ({top['batch_rate']:.1%} of rows labelled '{top['given']}', against "
            f"{top['reference_rate']:.2%} in the reference): a targeted relabelling of one class", [],
            value=top["batch_rate"], threshold=top["reference_rate"],
            null=null_of("the pair's rate among the reference's flagged rows of that class (beta-binomial, "
                         "Bonferroni over the pairs)", int(fitted.arrays["class_rows"][ctx.classes.index(top["given"])]),
                         top["p_value"], top["max_p_value"])))
    metrics = {
        "model": meta["model"],
        "model_log_loss": meta["log_loss"],
        "flagged_fraction": len(flagged) / n_known,
        "reference_flagged_fraction": ref_flag_fraction,
        "p_value": p_value,
        "tail_fraction": in_tail / n_known,
        "reference_tail_fraction": meta["reference_tail_fraction"],
        "unflagged_tail_fraction": kept_tail,
        "reference_unflagged_tail_fraction": ref_kept_tail,
        "tail_p_value": tail_p,
        "mean_surprise": mean_surprise,
        "reference_mean_surprise": ref_surprise,
        "surprise_p_value": surprise_p,
        "changed_label_estimate": changed_share,
        "thresholds": dict(zip(classes, thresholds.tolist(), strict=True)),
        "reference_score_quantiles": reference_quantiles(fitted.arrays["reference_scores"]),
        "flip_pairs": pairs,
        "near_copy_rows": near_copies,
        "reference_near_copy_fraction": meta.get("reference_near_copy_fraction", 0.0),
    }
    full_scores = scores.rows["score"]
    return CheckResult(NAME, tuple(findings), metrics, full_scores)


def _pair_table(given: np.ndarray, predicted: np.ndarray, y_batch: np.ndarray, fitted: Fitted,
                classes: list[str], spec: Spec) -> list[dict]:
    """Flagged rows per (given label, predicted label), largest first, each with the rate among the
    batch's rows of that given label, the reference's own rate for the pair, and whether the
    excess is significant: a binomial test, Bonferroni-corrected over the pairs that could pass
    (those with at least ``min_targeted_rows`` flagged rows; Tarone's refinement)."""
    total = max(len(given), 1)
    counts = pd.Series(list(zip(given.tolist(), predicted.tolist(), strict=True))).value_counts(sort=False)
    n_pairs = max(int((counts >= spec.min_targeted_rows).sum()), 1)
    class_rows, ref_pairs = fitted.arrays["class_rows"], fitted.arrays["pair_counts"]
    rows = []
    for (g, p), count in counts.items():
        in_class = max(int(class_rows[g]), 1)
        # The reference cannot show a rate below one row in its class; use half of that as floor.
        ref_rate = max(float(ref_pairs[g, p]) / in_class, 0.5 / in_class)
        in_batch = max(int(np.sum(y_batch == g)), 1)
        p_value = rate_excess_p_value(int(count), in_batch, float(ref_pairs[g, p]) / in_class, in_class)
        rows.append({"given": classes[g], "predicted": classes[p], "flagged": int(count),
                     "share_of_flagged": count / total, "batch_rate": count / in_batch, "reference_rate": ref_rate,
                     "p_value": p_value, "max_p_value": spec.max_p_value / n_pairs,
                     "significant": bool(count >= spec.min_targeted_rows and p_value < spec.max_p_value / n_pairs)})
    return sorted(rows, key=lambda r: (-r["flagged"], r["given"], r["predicted"]))
