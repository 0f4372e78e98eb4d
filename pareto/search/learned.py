"""``ama``: points learned by gradient descent, one per preference vector over the objectives.

Adaptive model averaging (Lin et al., "Mitigating the Alignment Tax of RLHF") learns the
per-block ratios of a layer-wise average by gradient descent on a weighted sum of objective
losses, with a penalty that keeps them near their start. The learning needs the models, so it
is not done here: the process that drives the run hands the driver a *learner*
(:meth:`Driver.use_learner`), a function ``learner(preference, **settings) -> (x, note)`` that
returns the learned point of the family's space and what to record with it (its learning
curve). This module chooses the preference vectors (an even spread over the simplex of the
objectives, Riesz s-energy points: exactly ``budget`` of them) and asks for them in
generations of ``per_generation``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pareto.search.base import Driver, register
from pareto.spaces import SearchSpace

Learner = Callable[..., tuple[np.ndarray, dict]]


def preference_vectors(n_objectives: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` preference vectors spread evenly over the simplex of ``n_objectives`` (pymoo's
    Riesz s-energy reference directions; the corners first when ``n`` allows)."""
    from pymoo.util.ref_dirs import get_reference_directions

    if n <= n_objectives:
        return np.eye(n_objectives)[:n]
    points = get_reference_directions("energy", n_objectives, n, seed=seed)
    corners = points.max(axis=1) > 1 - 1e-9
    return np.concatenate([points[corners], points[~corners]])


@register("ama")
class AdaptiveAveraging(Driver):
    """Learns one point per preference vector by gradient descent (the learner's work).

    Settings (all passed on to the learner): ``steps`` of gradient descent, ``learning_rate``
    (Adam, on the logits of the block ratios), ``penalty`` (weight of the squared distance of
    the ratios from their start), ``beta`` (the DPO temperature of the pair losses),
    ``pairs_per_step`` (pairs per objective and step), ``pairs`` (objective -> source of its
    stand-in loss; see the learner); ``per_generation``: preference vectors learned before
    their points are evaluated."""

    learns = True

    def __init__(
        self,
        space: SearchSpace,
        n_objectives: int,
        budget: int,
        seed: int = 0,
        steps: int = 16,
        learning_rate: float = 0.2,
        penalty: float = 0.1,
        beta: float = 0.1,
        pairs_per_step: int = 4,
        pairs: dict | None = None,
        per_generation: int = 4,
    ):
        super().__init__(space, n_objectives, budget, seed)
        for name, value in (("steps", steps), ("pairs_per_step", pairs_per_step)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive whole number; got {value}")
        if int(per_generation) != per_generation or per_generation < 1:
            raise ValueError(
                f"per_generation must be a positive whole number; got {per_generation}"
            )
        for name, value in (("learning_rate", learning_rate), ("beta", beta)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number; got {value}")
        if not np.isfinite(penalty) or penalty < 0:
            raise ValueError(f"penalty must be a number of at least 0; got {penalty}")
        if pairs is not None and not isinstance(pairs, dict):
            raise ValueError(f"pairs must map objective names to sources; got {pairs!r}")
        self.settings_for_learner = {
            "steps": int(steps),
            "learning_rate": float(learning_rate),
            "penalty": float(penalty),
            "beta": float(beta),
            "pairs_per_step": int(pairs_per_step),
            "pairs": dict(pairs or {}),
            "seed": self.seed,
        }
        self.per_generation = int(per_generation)
        self.preferences = preference_vectors(n_objectives, self.budget, self.seed)
        self.learner: Learner | None = None
        self._next, self._notes = 0, []

    def use_learner(self, learner: Learner) -> None:
        self.learner = learner

    def ask(self) -> np.ndarray | None:
        if self._next >= len(self.preferences):
            return None
        if self.learner is None:
            raise ValueError(
                "driver 'ama' learns its points by gradient on the models: it runs inside "
                "'paretomerge study run', which gives it the study's models"
            )
        batch = self.preferences[self._next : self._next + self.per_generation]
        self._next += len(batch)
        points, self._notes = [], []
        for preference in batch:
            x, note = self.learner(preference, **self.settings_for_learner)
            points.append(self.space.to_unit_cube(x))
            self._notes.append({"preference": [float(p) for p in preference], **note})
        return np.array(points)

    def tell(self, u: np.ndarray, f: np.ndarray) -> None:
        """Nothing to learn from the values: the preference vectors are fixed in advance."""

    def annotations(self) -> list[dict]:
        return self._notes
