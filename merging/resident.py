"""Experts resident on the evaluation device, and one working model overwritten in place.

The memory plan's ``resident`` way (:mod:`merging.plan`): the fastest merge, when the base and
every expert fit on the device. Layout: every parameter of the working model is a view into one
flat buffer ``flat`` of ``P`` values, ordered by position in the network (embeddings, layer 0
... layer L-1, final norm and head; :mod:`merging.layout`), so that each block of layers is one
contiguous range. Beside it lives the matrix ``stack`` of shape ``(1 + n_experts, P)``: row 0 is
the base, row ``i`` the expert ``theta_i``: a full checkpoint's own values, or the base plus a
LoRA adapter's ``scale * B @ A``. The task vectors are kept implicitly,
``delta_i = stack[i] - stack[0]``: storing ``theta_i`` lets a linear merge read only the rows it
weights (``sum_i w_i theta_i`` never reads the base), a quarter less memory traffic with three
experts. A linear merge is one matrix-vector product written straight into ``flat`` (per block
for ``layerwise``; :mod:`merging.weighted_sum`): it reads those rows once and writes the model
once, writing nothing to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from merging.checkpoints import LORA, load_pretrained
from merging.device import resolve_device, resolve_dtype
from merging.errors import CheckpointError
from merging.expert_set import ExpertSet
from merging.layout import FlatLayout, FlatMerger, match_key
from merging.weighted_sum import CPU_CHUNK, DEVICE_CHUNK, coefficients, weighted_sum

LOG = logging.getLogger(__name__)


def load_base_model(experts: ExpertSet, dtype: torch.dtype, *, trust_remote_code: bool = False):
    """The base as a ``transformers`` causal LM (buffers such as rotary tables initialised)."""
    from transformers import AutoModelForCausalLM

    loaded = load_pretrained(
        AutoModelForCausalLM,
        experts.base.path,
        who="base",
        dtype=dtype,
        trust_remote_code=trust_remote_code,
    )
    # a GGUF-loaded model is marked quantised; plain_model returns other models unchanged
    model = plain_model(loaded)
    model.eval()
    model.requires_grad_(False)
    return model


def plain_model(model):
    """A GGUF-loaded model as an ordinary one (transformers marks it quantised, which forbids
    ``save_pretrained``): same config and weights, no quantisation record."""
    from transformers import AutoModelForCausalLM

    if getattr(model, "hf_quantizer", None) is None:
        return model
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]
    fresh = AutoModelForCausalLM.from_config(config, dtype=next(model.parameters()).dtype)
    fresh.load_state_dict(model.state_dict())
    fresh.generation_config = model.generation_config
    return fresh.eval()


class ResidentMerger(FlatMerger):
    """Base and task vectors on ``device``; :meth:`set_linear` and friends rewrite the model.

    Args:
        experts: a validated :class:`ExpertSet`.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: storage and compute dtype: ``"auto"`` is float32 on CPU and bfloat16 on CUDA;
            ``"float16"`` is accepted on GPU.
    """

    def __init__(
        self,
        experts: ExpertSet,
        *,
        device: str | torch.device | None = "auto",
        dtype: str | torch.dtype | None = "auto",
        trust_remote_code: bool = False,
    ):
        self.experts = experts
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if experts.base.in_memory:
            # built by a program (benchmarks): the architecture alone, the values as given
            from merging.rows import RowSource
            from merging.streamed import empty_model

            model = empty_model(experts.base, trust_remote_code=trust_remote_code)
            self.layout = FlatLayout.of(model)
            source = RowSource(experts.base, self.layout, "base")
            params = {n: source.flat(n).view(self.layout.shapes[n]) for n in self.layout.names}
        else:
            model = load_base_model(experts, torch.float32, trust_remote_code=trust_remote_code)
            params = dict(model.named_parameters())  # tied weights appear once
            self.layout = FlatLayout.of(model)
        self.layers = self.layout.layers
        self.names, self.shapes = self.layout.names, self.layout.shapes
        self.offsets, self.numel = self.layout.offsets, self.layout.numel
        total = self.numel
        self.stack = torch.zeros(
            (1 + len(experts.names), total), dtype=self.dtype, device=self.device
        )
        for n in self.names:
            lo, hi = self.offsets[n]
            base_value = params[n].detach().reshape(-1)
            if not torch.isfinite(base_value).all():
                raise CheckpointError(f"base: tensor {n} has NaN or Inf values")
            self.stack[0, lo:hi] = base_value.to(self.dtype)
        self._fill_experts(params)
        self.flat = torch.empty(total, dtype=self.dtype, device=self.device)
        self.layout.bind(model, self.flat)
        model.to(device=self.device, dtype=self.dtype)  # the buffers: parameters are views
        self.model = model
        self.flat.copy_(self.stack[0])

    # -- construction ------------------------------------------------------------------

    def _fill_experts(self, params) -> None:
        base_ckpt = self.experts.base
        base_keys = set(base_ckpt.tensors)
        param_of_key: dict[str, str] = {}
        for n in self.names:
            key = n if n in base_keys else match_key(n, base_keys)
            if key is not None:
                param_of_key[key] = n

        def base_tensor(key: str) -> torch.Tensor:
            name = param_of_key.get(key, key)
            if name not in params:
                raise CheckpointError(f"base: no parameter for checkpoint tensor {key}")
            return params[name].detach()

        for row, expert in enumerate(self.experts.names, start=1):
            seen = set()
            self.stack[row] = self.stack[0]
            full = self.experts.experts[expert].kind != LORA
            pairs = (
                self.experts.expert_weights(expert)
                if full
                else self.experts.expert_deltas(expert, base_tensor)
            )
            for key, value in pairs:
                name = param_of_key.get(key) or match_key(key, set(self.names))
                if name is None:
                    continue  # a tensor the model does not use as a parameter (tied copy)
                lo, hi = self.offsets[name]
                theta = value.reshape(-1)
                if not full:
                    # a LoRA weight whose base layer the adapter also saved: both deltas add up
                    under = self.stack[row, lo:hi].float() if name in seen else None
                    start = params[name].detach().reshape(-1) if under is None else under
                    theta = start + theta
                self.stack[row, lo:hi] = theta.to(self.dtype)
                seen.add(name)
            if full:
                missing = [n for n in self.names if n not in seen]
                if missing:
                    raise CheckpointError(
                        f"expert {expert!r}: no tensor for parameters {missing[:5]}"
                    )

    # -- merging -----------------------------------------------------------------------

    def _combine(
        self, weights: Sequence[float], base_weight: float, lo: int = 0, hi: int | None = None
    ) -> None:
        hi = self.numel if hi is None else hi
        first = 1 if base_weight == 0 else 0
        c = coefficients(list(weights) if first else [base_weight, *weights], self.device)
        if self.device.type == "cpu":
            step = CPU_CHUNK
        else:
            step = hi - lo if self.dtype == torch.float32 else DEVICE_CHUNK
        for start in range(lo, hi, step):
            end = min(hi, start + step)
            weighted_sum(self.stack[first:, start:end], c, self.flat[start:end])

    @torch.no_grad()
    def set_linear(self, weights: Sequence[float], base_weight: float = 0.0) -> None:
        """``theta = base_weight * theta_base + sum_i weights_i * theta_i``, in place.

        With ``weights`` on the simplex and no base weight this is rewarded soups; task
        arithmetic ``base + lambda * sum_i w_i delta_i`` is ``base_weight = 1 - lambda sum w``
        with weights ``lambda * w``.
        """
        self._check_count(weights)
        self._combine(weights, base_weight)

    @torch.no_grad()
    def set_blockwise(self, block_weights: Sequence[Sequence[float]]) -> None:
        """One weight vector per contiguous block of layers (see :mod:`merging.architecture`)."""
        blocks = len(block_weights)
        for b, (lo, hi) in enumerate(self.block_ranges(blocks)):
            self._check_count(block_weights[b])
            if hi > lo:
                self._combine(block_weights[b], 0.0, lo, hi)

    @torch.no_grad()
    def set_per_tensor(self, merge) -> None:
        """``merge(name, base, [theta_i]) -> tensor`` for every parameter (mergekit methods)."""
        for n in self.names:
            lo, hi = self.offsets[n]
            shape = self.shapes[n]
            base = self.stack[0, lo:hi].view(shape)
            thetas = [self.stack[i, lo:hi].view(shape) for i in range(1, self.stack.shape[0])]
            out = merge(n, base, thetas)
            self.flat[lo:hi].copy_(out.reshape(-1))

    def expert_state(self, index: int) -> dict[str, torch.Tensor]:
        """Full weights of expert ``index`` (0 is the base), as views of the stack."""
        return {
            n: self.stack[index, lo:hi].view(self.shapes[n]) for n, (lo, hi) in self.offsets.items()
        }

    def task_vector(self, index: int) -> dict[str, torch.Tensor]:
        """``delta_i = theta_i - theta_base`` of expert ``index`` (1-based), as new tensors."""
        return {
            n: (self.stack[index, lo:hi] - self.stack[0, lo:hi]).view(self.shapes[n])
            for n, (lo, hi) in self.offsets.items()
        }
