"""Small statistics shared by the checks: is a rate (or a mean) in the batch above what the
reference says?

The reference's figure is itself an estimate from a finite sample. Treating it as exact makes a
test far too sure of itself on real data (a rate of 0 seen in 400 trusted rows is not a rate of
0), so when the reference's size is known the tests compare two samples: a rate through the
beta-binomial predictive distribution of the batch's count given the reference's (Jeffreys
prior). The mean test still takes the reference's mean as exact (a two-sample version cost the
label check its power on naturally noisy labels; see the closing note of 2026-11-29)."""

from __future__ import annotations

import numpy as np


def p_text(p_value: float) -> str:
    """A p-value for a message: ``p=1.2e-04``, or ``p<1e-15`` where floating point runs out."""
    return "p<1e-15" if p_value < 1e-15 else f"p={p_value:.1e}"


def rate_excess_p_value(count: int, n: int, expected_fraction: float, reference_n: int | None = None) -> float:
    """One-sided p-value of seeing ``count`` or more of ``n`` when the rate is ``expected_fraction``:
    binomial when that rate is a known constant, beta-binomial when it was measured on
    ``reference_n`` trusted rows (the predictive distribution of a new sample's count).

    The lower, the less the count is explained by the reference's own rate.
    """
    from scipy.stats import betabinom, binom

    if n <= 0 or count <= 0:
        return 1.0
    if reference_n is not None and reference_n > 0:
        seen = float(np.clip(expected_fraction, 0.0, 1.0)) * reference_n
        return float(betabinom.sf(count - 1, n, seen + 0.5, reference_n - seen + 0.5))
    p0 = float(np.clip(expected_fraction, 1e-6, 1 - 1e-6))
    return float(binom.sf(count - 1, n, p0))


def rate_exceeds(count: int, n: int, expected_fraction: float, *, min_excess_fraction: float,
                 max_p_value: float, reference_n: int | None = None) -> tuple[bool, float]:
    """True when ``count / n`` is both clearly (``min_excess_fraction``) and significantly
    (``max_p_value``) above ``expected_fraction`` (measured on ``reference_n`` rows, when given);
    also returns the p-value."""
    p_value = rate_excess_p_value(count, n, expected_fraction, reference_n)
    observed = count / n if n else 0.0
    return (observed > expected_fraction + min_excess_fraction and p_value < max_p_value), p_value


def mean_excess_p_value(reference: np.ndarray, mean: float, n: int, *, seed: int, resamples: int = 10_000,
                        max_draws: int = 20_000_000, two_sample: bool = False) -> float:
    """One-sided p-value of a batch of ``n`` rows having a mean of at least ``mean`` when its rows
    are like ``reference``'s.

    For skewed statistics (a few rows carry most of the mass) the normal approximation is far
    too confident on small batches, so the mean of ``n`` rows drawn from the reference is
    bootstrapped (seeded: same input, same p-value) while that takes at most ``max_draws``
    draws; larger batches, where the mean is close to normal, use the normal approximation.

    ``two_sample``: the reference's own mean is an estimate too (from ``len(reference)`` rows), so
    its sampling error (normal, ``sd / sqrt(len(reference))``) is added to every resampled
    difference; a batch a third the reference's size is then judged a third less sure.
    """
    from scipy.stats import norm

    reference = np.asarray(reference, dtype=np.float64)
    if n <= 0 or len(reference) == 0:
        return 1.0
    own_sd = reference.std() / np.sqrt(len(reference)) if two_sample else 0.0
    if n * resamples > max_draws:
        z = (mean - reference.mean()) / max(np.sqrt(reference.var() / n + own_sd ** 2), 1e-12)
        return float(norm.sf(z))
    rng = np.random.default_rng(seed)
    at_least = 0
    per_chunk = max(1, 2_000_000 // n)
    for start in range(0, resamples, per_chunk):
        size = min(per_chunk, resamples - start)
        means = reference[rng.integers(0, len(reference), size=(size, n))].mean(axis=1)
        if two_sample:
            means = means + rng.normal(0.0, own_sd, size)
        at_least += int(np.sum(means >= mean - 1e-12))
    return (1 + at_least) / (1 + resamples)


def pseudo_batch_p_value(count: int, n: int, null_counts: np.ndarray, null_n: int) -> float:
    """One-sided p-value of ``count`` of ``n`` rows against an empirical null: ``null_counts`` seen
    in pseudo-batches of ``null_n`` trusted rows, each judged exactly as a batch is.

    The null's mean and variance fix a beta-binomial (moment matching), so rows that repeat
    together (clusters, natural duplicates) widen the null as much as they do in trusted data,
    and the tail beyond the draws is still a probability, not 0. The rate and the intra-batch
    correlation carry over to a batch of another size."""
    from scipy.stats import betabinom

    null_counts = np.asarray(null_counts, dtype=np.float64)
    if n <= 0 or count <= 0 or null_n <= 0 or not len(null_counts):
        return 1.0
    rate = float(np.clip(null_counts.mean() / null_n, 1e-9, 1 - 1e-9))
    binomial_var = null_n * rate * (1 - rate)
    rho = (null_counts.var(ddof=1) / binomial_var - 1) / max(null_n - 1, 1) if len(null_counts) > 1 else 0.0
    rho = float(np.clip(rho, 1e-6, 0.999))
    return float(betabinom.sf(count - 1, n, rate * (1 / rho - 1), (1 - rate) * (1 / rho - 1)))
