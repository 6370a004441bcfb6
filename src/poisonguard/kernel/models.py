"""The classifiers the checks train, in one place so they are tuned once.

Gradient boosting runs a fixed 60 rounds at learning rate 0.15, without early stopping: on the
20k-row synthetic reference that matched the default's (100 rounds, early stopping) out-of-fold
log-loss (0.069 vs 0.068) in a third of the time, and its cost no longer depends on where a
validation split happens to stop it. Its leaves are L2-regularised (``l2_regularization=1``):
without it, multi-class fits on real data diverge where a class is nearly separable (tiny
hessians, huge leaf values) — holdout accuracy 0.17-0.48 on four fits of nycflights13's carrier
(16 classes) that differ by 2,000 of 36,000 rows, 0.96 with it; 0.66-0.93 on dplyr's storms,
0.92-0.93 with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

ModelKind = Literal["logistic", "gradient_boosting"]
T = TypeVar("T")


def fit_threads() -> int:
    """Threads for independent fits: ``$POISONGUARD_THREADS``, else the cores this process may use."""
    given = os.environ.get("POISONGUARD_THREADS", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"POISONGUARD_THREADS must be a whole number of threads, 1 or more. Got {given!r}: "
                             "set it to e.g. 2, or unset it to use one thread per core.")
        return int(given)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def side_by_side(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """``[job() for job in jobs]``, on up to :func:`fit_threads` threads. For independent fits
    (folds, null models, the baseline's models): scikit-learn's fits release the GIL in their
    compiled loops, each runs on one OpenMP thread (see ``kernel.telemetry``), and every job is
    seeded, so the results equal a sequential run's. Two 20k-row gradient-boosting fits took 1.17 s
    on two threads against 2.36 s one after the other on the 2-core bench machine."""
    workers = min(len(jobs), fit_threads())
    if workers <= 1:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="poisonguard-fit") as pool:
        return list(pool.map(lambda job: job(), jobs))


def classifier(kind: ModelKind | str, seed: int):
    """An unfitted scikit-learn classifier of ``kind``, seeded."""
    if kind == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=60, learning_rate=0.15, l2_regularization=1.0,
                                              early_stopping=False, random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=500)


# --------------------------------------------------------------------------- models as numbers

# A fitted model kept in a fitted state is its numbers (no pickle): the attributes scikit-learn's
# own predict_proba reads, set back on an unfitted model of the same kind, so a warm run predicts
# with exactly the code and numbers of the cold run (a test compares them bit for bit).
_LOGISTIC = ("coef_", "intercept_", "classes_", "n_iter_")


def model_arrays(kind: ModelKind | str, model) -> dict:
    """A fitted classifier of ``kind`` as named numeric arrays (see :func:`model_from_arrays`)."""
    import numpy as np

    if kind != "gradient_boosting":
        return {a: np.asarray(getattr(model, a)) for a in _LOGISTIC} | {"n_features_in_": np.int64(model.n_features_in_)}
    trees = [p for iteration in model._predictors for p in iteration]
    for tree in trees:
        if len(tree.raw_left_cat_bitsets) or len(tree.binned_left_cat_bitsets):
            raise ValueError("categorical splits cannot be kept as numbers; the model is refitted instead")
    return {"classes_": np.asarray(model.classes_), "baseline": np.asarray(model._baseline_prediction),
            "n_features_in_": np.int64(model.n_features_in_), "trees_per_iteration": np.int64(model.n_trees_per_iteration_),
            "nodes": np.concatenate([t.nodes for t in trees]), "node_counts": np.array([len(t.nodes) for t in trees])}


def model_from_arrays(kind: ModelKind | str, seed: int, arrays) -> object:
    """The classifier :func:`model_arrays` described, ready to ``predict_proba``."""
    import numpy as np

    model = classifier(kind, seed)
    model.n_features_in_ = int(arrays["n_features_in_"])
    if kind != "gradient_boosting":
        for a in _LOGISTIC:
            setattr(model, a, np.array(arrays[a]))
        return model
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.common import X_BITSET_INNER_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    k = int(arrays["trees_per_iteration"])
    no_cats = np.zeros((0, 8), dtype=X_BITSET_INNER_DTYPE)
    nodes = np.split(np.array(arrays["nodes"]), np.cumsum(arrays["node_counts"])[:-1])
    trees = [TreePredictor(n, no_cats, no_cats) for n in nodes]
    model._predictors = [trees[i:i + k] for i in range(0, len(trees), k)]
    model.classes_ = np.array(arrays["classes_"])
    model.n_trees_per_iteration_ = k
    model._baseline_prediction = np.array(arrays["baseline"])
    model._preprocessor = None
    model.is_categorical_ = None
    mapper = _BinMapper()
    mapper.is_categorical_ = np.zeros(model.n_features_in_, dtype=np.uint8)
    mapper.bin_thresholds_ = []
    model._bin_mapper = mapper
    model._loss = model._get_loss(sample_weight=None)
    return model


class ForestScorer:
    """An IsolationForest's ``score_samples`` from its numbers (see :func:`forest_arrays`): each
    tree is scikit-learn's own compiled ``Tree`` rebuilt from its node table, and the per-row sum
    runs in the forest's tree order, so a forest kept as numbers scores bit for bit as the fitted
    one did (a test compares them)."""

    def __init__(self, arrays) -> None:
        import numpy as np
        from sklearn.tree._tree import Tree

        self.n_features = int(arrays["n_features_in_"])
        counts = np.asarray(arrays["node_counts"])
        nodes = np.split(np.array(arrays["nodes"]), np.cumsum(counts)[:-1])
        lengths = np.split(np.array(arrays["path_lengths"]), np.cumsum(counts)[:-1])
        self.trees = []
        for table, depth, path in zip(nodes, np.asarray(arrays["max_depths"]), lengths, strict=True):
            tree = Tree(self.n_features, np.array([1], dtype=np.intp), 1)
            tree.__setstate__({"max_depth": int(depth), "node_count": len(table), "nodes": table,
                               "values": np.zeros((len(table), 1, 1))})
            self.trees.append((tree, path))
        self.denominator = float(arrays["denominator"])

    def score_samples(self, x):
        """Like ``IsolationForest.score_samples``: the lower, the more abnormal."""
        import numpy as np

        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {x.shape}")
        depths = np.zeros(len(x), order="f")
        for tree, path in self.trees:
            depths += path[tree.apply(x)]
        return -(2 ** (-np.divide(depths, self.denominator, out=np.ones_like(depths), where=self.denominator != 0)))


def forest_arrays(model) -> dict:
    """A fitted ``IsolationForest`` (grown on every feature) as named numeric arrays: each tree's
    node table and, per node, the path length ``score_samples`` adds for a row ending there."""
    import numpy as np
    from sklearn.ensemble._iforest import _average_path_length

    if model._max_features != model.n_features_in_:
        raise ValueError("only a forest grown on every feature can be kept as numbers")
    states = [e.tree_.__getstate__() for e in model.estimators_]
    paths = [d + a - 1.0 for d, a in zip(model._decision_path_lengths, model._average_path_length_per_tree,
                                        strict=True)]
    return {"n_features_in_": np.int64(model.n_features_in_), "nodes": np.concatenate([s["nodes"] for s in states]),
            "node_counts": np.array([s["node_count"] for s in states]),
            "max_depths": np.array([s["max_depth"] for s in states]),
            "path_lengths": np.concatenate(paths).astype(np.float64),
            "denominator": np.float64(len(model.estimators_) * _average_path_length([model._max_samples])[0])}
