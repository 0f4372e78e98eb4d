"""TRL's fused language-model head, for the scored positions only, where TRL would score them all.

TRL's preference trainers call ``model(..., labels=labels, fused_lm_head=True)`` and read the
per-token log-probabilities (and, for DPO's logs, the entropy, the mean logit and whether the
label is the top token) from a :class:`trl.trainer.utils.FusedCausalLMOutput`. Where Triton runs
(CUDA), TRL projects only the positions whose label is not ``-100``. On a CPU it projects every
position, prompts and padding included, in vocabulary tiles folded by a dozen elementwise passes,
and the backward projects them all again: with SmolLM2's 49,152-token vocabulary that was about
a third of a DPO step's time on 2 cores (``benchmarks/dpo_head.py``). :func:`add_compact_lm_head`
keeps the same contract and projects the scored positions once, with a plain log-softmax. A
DPO batch (chosen rows, then rejected rows) runs each pair as one packed sequence, so that the
prompt they share is computed once (a quarter of a pair's tokens on HH-RLHF), where the
attention takes a mask per position; elsewhere the rows run as TRL sent them.
"""

from __future__ import annotations

import functools
import types

import torch

from merging.zoo.shared_prefix import common_prefix, masks_per_position, packed_hidden_states

SCALING_SETTINGS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
"""Config fields that change the logits after the projection; a model that sets one keeps TRL's
head, which applies them."""

PLAIN_KEYWORDS = {"input_ids", "attention_mask", "use_cache"}
"""What a preference batch may set to be packed; anything else (positions of its own, input
embeddings, attentions asked for) runs the rows as they came."""


def add_compact_lm_head(model) -> bool:
    """Wrap ``model.forward`` (the causal LM that TRL's ``add_fused_lm_head`` patched, not its
    PEFT wrapper) so that ``fused_lm_head=True`` calls project only the scored positions; returns
    whether it did. Calls it does not serve (pre-shifted labels, MoE router logits, a model that
    scales its logits) go to the forward it wraps. ``entropy``, ``mean_logits`` and ``is_top1``
    and ``log_sum_sq_probs`` carry no gradient (TRL's DPO logs the first three and weighs pairs by
    the last)."""
    config = model.config.get_text_config()
    if any(getattr(config, name, None) not in (None, 1.0) for name in SCALING_SETTINGS):
        return False
    wrapped = model.forward

    @functools.wraps(type(model).forward)  # generate checks its keywords against this signature
    def forward(
        self,
        *args,
        fused_lm_head=False,
        labels=None,
        shift_labels=None,
        num_items_in_batch=None,
        **kwargs,
    ):
        if not fused_lm_head or shift_labels is not None or kwargs.get("output_router_logits"):
            return wrapped(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        from trl.trainer.utils import FusedCausalLMOutput

        kwargs["use_cache"] = False
        hidden = _hidden_states(self, args, kwargs)[:, :-1]
        log_probs, mask, logits, log_z = scored_log_probs(
            self.get_output_embeddings(), hidden, labels[:, 1:]
        )
        with torch.no_grad():
            probs = torch.softmax(logits, dim=-1)
            entropy = log_z - (probs * logits).sum(-1)
            log_sum_sq_probs = probs.square().sum(-1).log()
            mean_logits = logits.mean(-1)
            labelled = labels[:, 1:].to(mask.device)[mask]
            is_top1 = logits.argmax(-1) == labelled  # the first of tied maxima, as TRL counts it

        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=_spread(entropy, mask),
            log_sum_sq_probs=_spread(log_sum_sq_probs, mask),
            mean_logits=_spread(mean_logits, mask),
            is_top1=_spread(is_top1, mask),
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
    return True


def _hidden_states(model, args: tuple, kwargs: dict) -> torch.Tensor:
    """The last hidden states of a batch: packed pairs where :func:`_preference_pairs` finds
    them, each pair's prompt (and any start its two answers share) computed once; otherwise the
    rows as they came."""
    pairs = _preference_pairs(model, args, kwargs)
    if pairs is None:
        return model.base_model(*args, **kwargs).last_hidden_state
    hidden, columns = packed_hidden_states(model, pairs, pad=0)
    where = torch.zeros(kwargs["input_ids"].shape, dtype=torch.long)  # padding: column 0, unscored
    half = len(pairs)
    for row, (first, second) in enumerate(columns):
        where[row, : len(first)] = torch.tensor(first, dtype=torch.long)
        where[half + row, : len(second)] = torch.tensor(second, dtype=torch.long)
    pair = torch.arange(half).repeat(2)[:, None]
    return hidden[pair.to(hidden.device), where.to(hidden.device)]


def _preference_pairs(model, args: tuple, kwargs: dict) -> list | None:
    """The ``(first answer's row, second answer's row)`` token lists of a preference batch as
    TRL's trainers write it (the first answers' rows, then the second answers' in the same
    order, right-padded, plain positions), where the model's attention takes a mask per position
    (:func:`~merging.zoo.shared_prefix.masks_per_position`) and some pair shares a start;
    ``None`` for any other call."""
    ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
    if (
        args
        or any(v is not None for k, v in kwargs.items() if k not in PLAIN_KEYWORDS)
        or ids is None
        or mask is None
        or ids.dim() != 2
        or len(ids) % 2
        or not masks_per_position(model)
    ):
        return None
    lengths = mask.sum(-1)
    if not torch.equal(
        mask.bool(), torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]
    ):
        return None  # not right-padded
    rows = [row[:n].tolist() for row, n in zip(ids, lengths.tolist(), strict=True)]
    half = len(rows) // 2
    pairs = list(zip(rows[:half], rows[half:], strict=True))
    return pairs if any(common_prefix(a, b) for a, b in pairs) else None


def scored_log_probs(head, hidden, targets):
    """``(log_probs, mask, logits, log_z)``: the projection ``head`` of the ``hidden`` states
    (``(rows, positions, width)``) at the positions whose target is not ``-100`` only, each such
    position's log-probability of its target spread to the targets' shape (zero elsewhere), the
    mask of those positions, and their float32 logits and log-partition, in mask order."""
    targets = targets.to(head.weight.device)  # a model split across devices ends elsewhere
    mask = targets != -100
    logits = head(hidden.to(head.weight.device)[mask]).float()  # (scored positions, vocabulary)
    log_z = torch.logsumexp(logits, dim=-1)
    log_probs = logits.gather(-1, targets[mask][:, None]).squeeze(-1) - log_z
    return _spread(log_probs, mask), mask, logits, log_z


def _spread(values, mask):
    """``values``, one per true cell of ``mask``, in a zero tensor of its shape; masked_scatter
    keeps a batch with nothing scored connected to the graph."""
    return values.new_zeros(mask.shape).masked_scatter(mask, values)
