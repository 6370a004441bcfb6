"""Small statistics shared by the checks: is a rate in the batch above what the reference says?"""

from __future__ import annotations

import numpy as np


def rate_excess_p_value(count: int, n: int, expected_fraction: float) -> float:
    """One-sided binomial p-value of seeing ``count`` or more of ``n`` at ``expected_fraction``.

    The lower, the less the count is explained by the reference's own rate.
    """
    from scipy.stats import binom

    if n <= 0 or count <= 0:
        return 1.0
    p0 = float(np.clip(expected_fraction, 1e-6, 1 - 1e-6))
    return float(binom.sf(count - 1, n, p0))


def rate_exceeds(count: int, n: int, expected_fraction: float, *, min_excess_fraction: float,
                 max_p_value: float) -> tuple[bool, float]:
    """True when ``count / n`` is both clearly (``min_excess_fraction``) and significantly
    (``max_p_value``) above ``expected_fraction``; also returns the p-value."""
    p_value = rate_excess_p_value(count, n, expected_fraction)
    observed = count / n if n else 0.0
    return (observed > expected_fraction + min_excess_fraction and p_value < max_p_value), p_value
