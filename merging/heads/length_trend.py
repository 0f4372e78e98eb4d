"""Length control for reward heads: every feature's linear trend in the response's length.

Human labels often prefer the longer answer (helpful-base: 60% of pairs), and a head trained on
them measures length as much as its objective. A length-controlled head
(``length_control="residual"`` in :func:`~merging.heads.bt_head.train_bt_head`) first removes
from every feature its linear trend in the response's length (words and log words, fitted over
the training responses), so its score carries no linear length trend over them; it is trained
and scores on those residuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def response_lengths(responses: Sequence[str]) -> np.ndarray:
    """``(n, 2)``: each response's length in words and its logarithm (``log(1 + words)``)."""
    words = np.array([len(r.split()) for r in responses], dtype=float)
    return np.stack([words, np.log1p(words)], axis=1)


@dataclass(frozen=True)
class LengthTrend:
    """Every feature's linear trend in the response's length, to be removed:
    ``z - [1, (L - center) / scale] @ coef`` with ``L`` from :func:`response_lengths`."""

    center: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    """``(3, d)``: intercept, words and log-words coefficients of each feature."""

    @classmethod
    def fit(cls, z: np.ndarray, responses: Sequence[str]) -> LengthTrend:
        lengths = response_lengths(responses)
        center, scale = lengths.mean(axis=0), lengths.std(axis=0) + 1e-6
        design = np.column_stack([np.ones(len(z)), (lengths - center) / scale])
        coef = np.linalg.lstsq(design, z, rcond=None)[0]
        return cls(center, scale, coef)

    def remove(self, z: np.ndarray, responses: Sequence[str]) -> np.ndarray:
        lengths = (response_lengths(responses) - self.center) / self.scale
        return z - np.column_stack([np.ones(len(z)), lengths]) @ self.coef

    def tensors(self) -> dict[str, torch.Tensor]:
        # float64, as fitted: a saved head scores exactly as the one just trained
        return {
            "length_center": torch.from_numpy(self.center.astype(np.float64)),
            "length_scale": torch.from_numpy(self.scale.astype(np.float64)),
            "length_coef": torch.from_numpy(self.coef.astype(np.float64)),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> LengthTrend | None:
        if "length_coef" not in tensors:
            return None
        return cls(
            tensors.pop("length_center").numpy(),
            tensors.pop("length_scale").numpy(),
            tensors.pop("length_coef").numpy(),
        )
