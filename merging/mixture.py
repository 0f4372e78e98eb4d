"""Decoding-time mixing of experts (MOD, Shi et al. 2024): next-token scores
``sum_i w_i log p_i(token | context)``.

MOD derives this mixture as the optimal policy for a weighted sum of objectives when every
expert is the reverse-KL-regularised optimum for its own objective. :class:`ExpertMixture` looks
like a causal language model to generation and to the heads that score a policy: its forward
runs every expert of non-zero weight over the same tokens, each with its own KV cache, and
returns ``log_softmax(sum_i w_i log_softmax(logits_i))`` (the mixture, normalised) as its
logits. Greedy decoding's argmax of it is MOD's greedy token; :func:`merging.generation.
greedy_decode` drops finished rows from every expert's cache at once (:class:`MixtureCache`).

The experts are not copied: each forward runs the resident merger's working model with one
expert's weights swapped in (``torch.func.functional_call`` over views of the merger's stack).
One forward per expert and step: experts with their own full weights cannot share one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import functional_call

from merging.heads.answer_log_probs import Row, answer_logits


class MixtureCache:
    """The KV caches of a mixture's experts, one each, selected together as rows finish."""

    def __init__(self, caches: Sequence):
        self.caches = list(caches)

    def batch_select_indices(self, keep: torch.Tensor) -> None:
        for cache in self.caches:
            cache.batch_select_indices(keep)


class ExpertMixture(torch.nn.Module):
    """The policy ``log_softmax(sum_i w_i log p_i)`` over the experts of a resident merger.

    Args:
        merger: a :class:`~merging.resident.ResidentMerger` (its stack holds every expert).
        weights: one non-negative weight per expert, in the merger's order; experts of weight
            0 are not run at all.
    """

    def __init__(self, merger, weights: Sequence[float]):
        super().__init__()
        if not hasattr(merger, "expert_state"):
            raise ValueError(
                "decoding runs every expert at every step, so every expert must be resident on "
                f"the device; the memory plan chose a {type(merger).__name__} (use --placement "
                "resident, or fewer or LoRA experts)"
            )
        names = merger.expert_names
        if len(weights) != len(names):
            raise ValueError(f"got {len(weights)} weights for {len(names)} experts {names}")
        if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
            raise ValueError(f"mixture weights must be non-negative, one positive; got {weights}")
        self.model = merger.model
        self.config = merger.model.config
        self.generation_config = merger.model.generation_config
        self.experts = [
            (float(w), merger.expert_state(i + 1)) for i, w in enumerate(weights) if w > 0
        ]
        from merging.generation import cache_keyword, forward_keywords

        self._cache_name = cache_keyword(self.model)
        self._keep = "logits_to_keep" in forward_keywords(self.model)

    @property
    def kv_copies(self) -> int:
        """KV caches a generated sequence holds: one per expert run."""
        return len(self.experts)

    def _run(self, state: dict, **kwargs):
        return functional_call(self.model, state, args=(), kwargs=kwargs)

    def _mix(self, logits_of) -> torch.Tensor:
        mixed = None
        for w, state in self.experts:
            part = w * torch.log_softmax(logits_of(state).float(), -1)
            mixed = part if mixed is None else mixed + part
        return torch.log_softmax(mixed, -1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: MixtureCache | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ):
        """The mixture's log-probabilities as ``logits`` (float32), and its caches."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        caches = past_key_values.caches if past_key_values is not None else [None] * len(self)
        new_caches = []
        extra = {"logits_to_keep": logits_to_keep} if self._keep else {}
        step = iter(caches)

        def logits_of(state):
            out = self._run(
                state,
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=use_cache,
                **{self._cache_name: next(step)},
                **extra,
            )
            new_caches.append(getattr(out, self._cache_name, None))
            return out.logits

        logits = self._mix(logits_of)
        cache = MixtureCache(new_caches) if use_cache else None
        return CausalLMOutputWithPast(logits=logits, past_key_values=cache)

    def __len__(self) -> int:
        return len(self.experts)

    @torch.no_grad()
    def answer_log_probs(self, rows: Sequence[Row], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's log-probabilities at the positions that predict each answer token (the
        heads' :func:`~merging.heads.answer_log_probs.answer_log_probs`)."""
        targets = []

        def logits_of(state):
            logits, target = answer_logits(self.model, state, rows, pad)
            targets.append(target)
            return logits

        return self._mix(logits_of), targets[0]
