"""The shared batch-vs-reference tests: p-values that hold on skewed statistics."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from poisonguard.kernel.stats import mean_excess_p_value, rate_excess_p_value


def _skewed(seed: int, n: int = 5000) -> np.ndarray:
    # Like a label's surprise 1/p: most rows near 1, 1% at the cap of 20.
    rng = np.random.default_rng(seed)
    values = 1 + rng.exponential(0.3, n)
    values[rng.random(n) < 0.01] = 20.0
    return values


def test_bootstrap_p_value_is_honest_where_the_normal_approximation_is_not():
    reference = _skewed(0)
    # Batches of 180 rows drawn from the reference itself: at most ~alpha of them may look significant.
    rng = np.random.default_rng(1)
    means = [reference[rng.integers(0, len(reference), 180)].mean() for _ in range(400)]
    boot = np.array([mean_excess_p_value(reference, m, 180, seed=7, resamples=2000) for m in means])
    normal = np.array([norm.sf((m - reference.mean()) / (reference.std() / np.sqrt(180))) for m in means])
    assert np.mean(boot < 0.01) <= 0.02
    assert np.mean(normal < 0.01) > np.mean(boot < 0.01)  # the normal tail is too thin here


def test_a_clear_excess_is_significant_and_the_p_value_is_deterministic():
    reference = _skewed(0)
    high = reference.mean() + 3.0
    first = mean_excess_p_value(reference, high, 180, seed=3)
    assert first < 1e-3
    assert mean_excess_p_value(reference, high, 180, seed=3) == first
    assert mean_excess_p_value(reference, reference.mean() - 1, 180, seed=3) > 0.9


def test_large_batches_use_the_normal_approximation():
    reference = _skewed(0)
    z3 = reference.mean() + 3 * reference.std() / np.sqrt(1_000_000)
    assert abs(mean_excess_p_value(reference, z3, 1_000_000, seed=0) - norm.sf(3)) < 1e-9


def test_the_reference_is_a_sample_too_rates():
    """A rare event (0.5%) measured on 400 trusted rows, tested on batches of 400: the
    beta-binomial test stays near its level where the binomial one, taking the reference's rate
    as exact, fires far too often (a rate of 0 seen in 400 rows is not a rate of 0)."""
    rng = np.random.default_rng(4)
    beta, binomial = [], []
    for _ in range(2000):
        seen, count = rng.binomial(400, 0.005), rng.binomial(400, 0.005)
        beta.append(rate_excess_p_value(count, 400, seen / 400, reference_n=400))
        binomial.append(rate_excess_p_value(count, 400, seen / 400))
    assert np.mean(np.array(beta) < 0.01) <= 0.02
    assert np.mean(np.array(binomial) < 0.01) > 0.05
