"""Models: kept as numbers they predict exactly what the fitted model predicts, bit for bit; fitted side by side they equal fits one after another."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.kernel.models import (
    ForestScorer,
    classifier,
    forest_arrays,
    model_arrays,
    model_from_arrays,
    side_by_side,
)


@pytest.mark.parametrize("kind", ["logistic", "gradient_boosting"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_a_model_rebuilt_from_its_numbers_predicts_the_same_bits(kind, n_classes):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan if kind == "gradient_boosting" else 0.0
    y = (np.nan_to_num(x[:, 0]) * 2 + rng.normal(size=600) > 0).astype(int) + (n_classes > 2) * (x[:, 1] > 0.5) * 2
    model = classifier(kind, seed=5).fit(x, y)
    arrays = model_arrays(kind, model)
    assert all(isinstance(a, np.ndarray | np.generic) and a.dtype != object for a in arrays.values())
    rebuilt = model_from_arrays(kind, 5, arrays)
    fresh = rng.normal(size=(300, 7)).astype(np.float32)
    assert np.array_equal(rebuilt.predict_proba(fresh), model.predict_proba(fresh))
    assert np.array_equal(rebuilt.predict(fresh), model.predict(fresh))


def test_the_numbers_survive_npz_without_pickle(tmp_path):
    x = np.random.default_rng(1).normal(size=(300, 4))
    y = (x[:, 0] > 0).astype(int)
    model = classifier("gradient_boosting", seed=1).fit(x, y)
    np.savez(tmp_path / "m.npz", **model_arrays("gradient_boosting", model))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        rebuilt = model_from_arrays("gradient_boosting", 1, {k: data[k] for k in data.files})
    assert np.array_equal(rebuilt.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize("max_samples", [256, 40])
def test_an_isolation_forest_kept_as_numbers_scores_the_same_bits(tmp_path, max_samples):
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(6)
    x = rng.normal(size=(2000, 6))
    forest = IsolationForest(n_estimators=30, max_samples=max_samples, random_state=2, n_jobs=1).fit(x)
    np.savez(tmp_path / "f.npz", **forest_arrays(forest))
    with np.load(tmp_path / "f.npz", allow_pickle=False) as data:
        rebuilt = ForestScorer({k: data[k] for k in data.files})
    fresh = np.vstack([rng.normal(size=(500, 6)) * 3, x[:10]])
    assert np.array_equal(rebuilt.score_samples(fresh), forest.score_samples(fresh))
    with pytest.raises(ValueError, match="6 features"):
        rebuilt.score_samples(fresh[:, :5])


def test_fits_side_by_side_equal_fits_one_after_another(monkeypatch):
    import threading


    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(3000, 8)), rng.integers(0, 3, 3000)
    seen: set[str] = set()

    def job(seed: int):
        def fit() -> np.ndarray:
            seen.add(threading.current_thread().name)
            return classifier("gradient_boosting", seed).fit(x[seed::2], y[seed::2]).predict_proba(x)
        return fit

    monkeypatch.setenv("POISONGUARD_THREADS", "2")
    together = side_by_side([job(0), job(1)])
    assert any(name.startswith("poisonguard-fit") for name in seen)
    monkeypatch.setenv("POISONGUARD_THREADS", "1")
    seen.clear()
    alone = side_by_side([job(0), job(1)])
    assert seen == {threading.main_thread().name}
    for a, b in zip(together, alone, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(together[0], together[1])  # the order of the jobs is kept


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_thread_count_is_named_with_what_to_do(monkeypatch, value):
    monkeypatch.setenv("POISONGUARD_THREADS", value)
    with pytest.raises(ValueError, match="POISONGUARD_THREADS must be a whole number"):
        side_by_side([lambda: 1, lambda: 2])
