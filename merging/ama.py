"""Adaptive model averaging (AMA, Lin et al.): layer-wise ratios learned by gradient descent.

The merged weights of block ``b`` are ``sum_i r_bi theta_i`` over the experts, with the ratios
``r_b = softmax(a_b)`` on the simplex; only the logits ``a`` learn, the experts stay frozen (the
merged weights are computed from the resident merger's stack and run through its working
model with ``torch.func.functional_call``, so gradients reach ``a`` and nothing else). For a
preference ``lambda`` over the objectives the loss is ``sum_j lambda_j L_j(r) + penalty *
||r - r_start||^2``: ``L_j`` is objective ``j``'s differentiable stand-in
(:mod:`merging.stand_ins`), the DPO loss of the merged policy on its pairs against the base, or
the mean negative log-likelihood of reference text; the penalty is the paper's, keeping the
ratios near their start (here the even average).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from merging.heads.answer_log_probs import answer_logits, encode, pad_id
from merging.stand_ins import StandIn

REFERENCE_BATCH = 8
"""Sequences the base scores at once for the reference log-probabilities."""


class RatioLearner:
    """Learns ``(blocks, experts)`` ratios of a resident merger for preference vectors.

    Args:
        merger: a :class:`~merging.resident.ResidentMerger` over the experts.
        blocks: the number of contiguous blocks of layers (as the ``layerwise`` family).
        tokenizer: the base's tokenizer.
        stand_ins: one :class:`StandIn` per objective, in the order of the preference vectors.
    """

    def __init__(self, merger, blocks: int, tokenizer, stand_ins: Sequence[StandIn]):
        if not hasattr(merger, "stack"):
            raise ValueError(
                "ama learns on every expert's own weights: they must be resident on the device "
                f"(the memory plan chose a {type(merger).__name__}; use --placement resident)"
            )
        self.merger, self.blocks, self.stand_ins = merger, int(blocks), list(stand_ins)
        self.ranges = merger.block_ranges(self.blocks)
        covered = sum(hi - lo for lo, hi in self.ranges)
        if covered != merger.stack.shape[1] or self.ranges[0][0] != 0:
            raise ValueError("the blocks do not cover the model's weights in one piece")
        self._block = {  # the block each parameter lies in (blocks hold whole tensors)
            n: next(b for b, (blo, bhi) in enumerate(self.ranges) if blo <= lo < bhi)
            for n, (lo, _) in merger.offsets.items()
        }
        self.pad = pad_id(tokenizer)
        self.rows = [self._encode(tokenizer, s) for s in self.stand_ins]
        self._reference: list[torch.Tensor | None] = [None] * len(self.stand_ins)

    @staticmethod
    def _encode(tokenizer, stand_in: StandIn) -> list[tuple]:
        """Each row: ``(chosen row, rejected row)``, or ``(text row,)`` for reference text."""
        out = []
        for p in stand_in.pairs:
            chosen = encode(tokenizer, p.prompt, p.chosen)
            if not chosen[1]:
                continue
            if stand_in.text_only:
                out.append((chosen,))
                continue
            rejected = encode(tokenizer, p.prompt, p.rejected)
            if rejected[1]:
                out.append((chosen, rejected))
        if not out:
            raise ValueError(f"stand-in of {stand_in.objective!r}: no row has answer tokens")
        return out

    # -- the differentiable merge --------------------------------------------------------
    def merged_params(self, ratios: torch.Tensor) -> dict[str, torch.Tensor]:
        """The merged weights for ``(blocks, experts)`` ratios, by parameter name (differentiable
        in ``ratios``). Each parameter is its own product: slices of one merged flat tensor
        would each send a gradient the size of the whole model back through the slice (on
        SmolLM2-135M one step's backward took 117 s that way, two thirds of it filling zeros;
        15 s this way)."""
        stack, m = self.merger.stack, self.merger
        ratios = ratios.to(stack.dtype)
        return {
            n: (ratios[self._block[n]] @ stack[1:, lo:hi]).view(m.shapes[n])
            for n, (lo, hi) in m.offsets.items()
        }

    def base_params(self) -> dict[str, torch.Tensor]:
        return self.merger.expert_state(0)

    def answer_log_probs(self, params, rows: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum, count)`` per row: the summed log-probability of its answer's tokens under
        the model with ``params``, and how many tokens that is."""
        logits, target = answer_logits(self.merger.model, params, rows, self.pad)
        valid = target != -100
        wide = logits if logits.dtype == torch.float64 else logits.float()
        lp = torch.log_softmax(wide, -1).gather(-1, target.clamp(min=0)[..., None])
        return (lp.squeeze(-1) * valid).sum(-1), valid.sum(-1)

    def _pieces(self, j: int, idx: Sequence[int]) -> list:
        """The sequences of rows ``idx`` of stand-in ``j``, chosen ones first."""
        rows = [self.rows[j][i] for i in idx]
        return [r[0] for r in rows] + [r[1] for r in rows if len(r) > 1]

    def reference(self, j: int) -> torch.Tensor:
        """The base's summed log-probabilities of every sequence of stand-in ``j`` (once)."""
        if self._reference[j] is None:
            pieces = self._pieces(j, range(len(self.rows[j])))
            with torch.no_grad():  # a few sequences at a time: logits are rows x answer x vocab
                params = self.base_params()
                parts = [
                    self.answer_log_probs(params, pieces[i : i + REFERENCE_BATCH])[0]
                    for i in range(0, len(pieces), REFERENCE_BATCH)
                ]
            self._reference[j] = torch.cat(parts)
        return self._reference[j]

    def loss(self, j: int, params, idx: Sequence[int], beta: float) -> torch.Tensor:
        """Stand-in ``j``'s loss on its rows ``idx``: the DPO loss against the base, or the mean
        negative log-likelihood per token of reference text."""
        total, count = self.answer_log_probs(params, self._pieces(j, idx))
        if self.stand_ins[j].text_only:
            return -(total / count).mean()
        n = len(idx)
        ref = self.reference(j)
        k = len(self.rows[j])
        ref = torch.cat([ref[list(idx)], ref[[k + i for i in idx]]])
        moved = total - ref
        margin = moved[:n] - moved[n:]
        return -torch.nn.functional.logsigmoid(beta * margin).mean()

    def losses(self, ratios, beta: float, rows: int | None = None) -> list[float]:
        """Every stand-in's loss at ``ratios`` (a ``(blocks, experts)`` array) on its first
        ``rows`` rows (all by default), without gradients. Both losses are means over rows, so
        they are computed a few rows at a time (logits are rows x answer x vocabulary) and
        averaged by the rows in each chunk."""
        step = max(1, REFERENCE_BATCH // 2)  # a pair is two sequences
        out = []
        with torch.no_grad():
            params = self.merged_params(torch.as_tensor(np.asarray(ratios), dtype=torch.float32))
            for j, r in enumerate(self.rows):
                n = min(rows or len(r), len(r))
                chunks = [range(i, min(i + step, n)) for i in range(0, n, step)]
                total = sum(float(self.loss(j, params, c, beta)) * len(c) for c in chunks)
                out.append(total / n)
        return out

    # -- learning ------------------------------------------------------------------------
    def total_loss(
        self,
        logits: torch.Tensor,
        preference: Sequence[float],
        rows: dict[int, Sequence[int]],
        beta: float,
        penalty: float,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``sum_j lambda_j L_j(r) + penalty * ||r - r_start||^2`` at ``r = softmax(logits)``
        (the start is the even average), on stand-in ``j``'s rows ``rows[j]``; and each
        weighted stand-in's loss by objective name."""
        ratios = torch.softmax(logits, -1)
        start = torch.full_like(ratios, 1 / ratios.shape[-1])
        params = self.merged_params(ratios)
        parts, total = {}, penalty * ((ratios - start) ** 2).sum()
        for j, weight in enumerate(preference):
            if weight > 0:
                value = self.loss(j, params, rows[j], beta)
                parts[self.stand_ins[j].objective] = round(float(value.detach()), 5)
                total = total + float(weight) * value
        return total, parts

    def learn(
        self,
        preference: Sequence[float],
        *,
        steps: int,
        learning_rate: float,
        penalty: float,
        beta: float,
        pairs_per_step: int,
        seed: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[dict]]:
        """The learned ``(blocks, experts)`` ratios for ``preference`` (one weight per stand-in)
        and the learning curve: per step, the total loss and each weighted stand-in's loss."""
        preference = np.asarray(preference, dtype=float)
        if preference.shape != (len(self.stand_ins),) or preference.min() < 0:
            raise ValueError(
                f"a preference is {len(self.stand_ins)} non-negative weights; got {preference}"
            )
        k = self.merger.stack.shape[0] - 1
        logits = torch.zeros((self.blocks, k), requires_grad=True)
        optimiser = torch.optim.Adam([logits], lr=learning_rate)
        rng = np.random.default_rng(seed)
        order = {j: rng.permutation(len(r)) for j, r in enumerate(self.rows)}
        curve = []
        for step in range(steps):
            rows = {
                j: [
                    int(order[j][(step * pairs_per_step + i) % len(self.rows[j])])
                    for i in range(pairs_per_step)
                ]
                for j in range(len(self.rows))
            }
            total, parts = self.total_loss(logits, preference, rows, beta, penalty)
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
            curve.append({"step": step, "loss": round(float(total.detach()), 5), **parts})
            if progress is not None:
                progress(1)
        return torch.softmax(logits.detach(), -1).double().numpy(), curve
