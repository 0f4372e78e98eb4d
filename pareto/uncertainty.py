"""How sure is a front? Dominance probabilities for objective values with standard errors.

Objective values of language models are means over prompts: a point that looks dominated may
not be. Treating each mean as independent and normal with its standard error, we draw the
whole set many times and count how often each point is non-dominated.
"""

from __future__ import annotations

import moocore
import numpy as np

from pareto._arrays import SensesLike, as_points, parse_senses, sign_vector

DEFAULT_SAMPLES = 2000


def dominance_probability(
    means: object,
    stderrs: object,
    senses: SensesLike = "min",
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Monte-Carlo probability that each point is non-dominated.

    Each draw replaces every mean by ``mean + stderr * N(0, 1)`` independently per point and
    objective, then marks the non-dominated points (duplicates all count, as in
    :func:`pareto.pareto_mask`). The Monte-Carlo standard error of each probability is at most
    ``0.5 / sqrt(n_samples)``. The same inputs and seed give the same result.

    Args:
        means: ``(n, m)`` estimated objective values.
        stderrs: ``(n, m)`` standard errors (``>= 0``; 0 means exactly known).
        senses: ``"max"`` or ``"min"`` per objective.
        n_samples: number of Monte-Carlo draws (``>= 1``).
        seed: seed of the random generator.

    Returns:
        ``(n,)`` probabilities in ``[0, 1]``.
    """
    mu = as_points(means, "means")
    se = as_points(stderrs, "stderrs")
    if se.shape != mu.shape:
        raise ValueError(f"stderrs has shape {se.shape} but means has shape {mu.shape}")
    if (se < 0).any():
        raise ValueError("stderrs must be >= 0")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer; got {n_samples}")
    signs = sign_vector(parse_senses(senses, mu.shape[1]))
    n = mu.shape[0]
    if n == 0:
        return np.zeros(0)
    z_mu, z_se = mu * signs, se
    if not z_se.any():  # exactly known values: the draw is the same every time
        return moocore.is_nondominated(z_mu, keep_weakly=True).astype(float)
    rng = np.random.default_rng(seed)
    counts = np.zeros(n, dtype=np.int64)
    for _ in range(int(n_samples)):
        draw = z_mu + z_se * rng.standard_normal(mu.shape)
        counts += moocore.is_nondominated(draw, keep_weakly=True)
    return counts / int(n_samples)
