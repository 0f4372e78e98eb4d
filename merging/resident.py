"""Experts resident on the evaluation device, and one working model overwritten in place.

Layout: every parameter of the working model is a view into one flat buffer ``flat`` of ``P``
values, ordered by position in the network (embeddings, layer 0 ... layer L-1, final norm and
head), so that each block of layers is one contiguous range. Beside it lives the matrix
``stack`` of shape ``(1 + n_experts, P)``: row 0 is the base, row ``i`` the expert
``theta_i = theta_base + delta_i``, built from its task vector ``delta_i`` (a full checkpoint
minus the base, or a LoRA adapter's ``B @ A * scale``). The task vectors are kept implicitly,
``delta_i = stack[i] - stack[0]``: storing ``theta_i`` lets a linear merge read only the rows it
weights (``sum_i w_i theta_i`` never reads the base), a quarter less memory traffic with three
experts. A linear merge is one matrix-vector product written straight into ``flat`` (per block
for ``layerwise``): it reads those rows once and writes the model once, allocating nothing and
writing nothing to disk.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import torch

from merging.architecture import UnknownArchitectureError, layer_map
from merging.checkpoints import ExpertSet
from merging.device import resolve_device, resolve_dtype
from merging.errors import CheckpointError
from merging.paths import pretrained_source

LOG = logging.getLogger(__name__)
CPU_CHUNK = 1 << 18  # values per matrix-vector call on the CPU


def load_base_model(experts: ExpertSet, dtype: torch.dtype, *, trust_remote_code: bool = False):
    """The base as a ``transformers`` causal LM (buffers such as rotary tables initialised)."""
    from transformers import AutoModelForCausalLM

    base = experts.base
    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    folder, source = pretrained_source(base.path)
    # a GGUF-loaded model is marked quantised; plain_model returns other models unchanged
    model = plain_model(AutoModelForCausalLM.from_pretrained(folder, **source, **kwargs))
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


class ResidentMerger:
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
        model = load_base_model(experts, torch.float32, trust_remote_code=trust_remote_code)
        try:
            self.layers = layer_map(model.config)
        except UnknownArchitectureError as err:
            LOG.info("%s", err)
            self.layers = None
        params = dict(model.named_parameters())  # tied weights appear once
        self.names = self._ordered(list(params))
        self.shapes = {n: tuple(params[n].shape) for n in self.names}
        self.offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for n in self.names:
            size = params[n].numel()
            self.offsets[n] = (total, total + size)
            total += size
        self.numel = total
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
        model.to(device=self.device, dtype=self.dtype)
        for n in self.names:
            lo, hi = self.offsets[n]
            param = self._param(model, n)
            param.data = self.flat[lo:hi].view(self.shapes[n])
        self.model = model
        self.flat.copy_(self.stack[0])

    # -- construction ------------------------------------------------------------------

    def _ordered(self, names: list[str]) -> list[str]:
        if self.layers is None:
            return names
        position = {p.name: i for i, p in enumerate(self.layers.places)}
        unknown = [n for n in names if n not in position]
        if unknown:
            LOG.info("parameters outside mergekit's layout, kept last: %s", unknown)
        return sorted(names, key=lambda n: position.get(n, len(position)))

    @staticmethod
    def _param(model, name: str) -> torch.nn.Parameter:
        module_name, _, attr = name.rpartition(".")
        return getattr(model.get_submodule(module_name), attr)

    def _fill_experts(self, params) -> None:
        base_ckpt = self.experts.base
        base_keys = set(base_ckpt.tensors)
        param_of_key: dict[str, str] = {}
        for n in self.names:
            key = n if n in base_keys else _match_key(n, base_keys)
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
            for key, delta in self.experts.expert_deltas(expert, base_tensor):
                name = param_of_key.get(key) or _match_key(key, set(self.names))
                if name is None:
                    continue  # a tensor the model does not use as a parameter (tied copy)
                lo, hi = self.offsets[name]
                theta = params[name].detach().reshape(-1) + delta.reshape(-1)
                self.stack[row, lo:hi] = theta.to(self.dtype)
                seen.add(name)
            if self.experts.experts[expert].kind != "lora":
                missing = [n for n in self.names if n not in seen]
                if missing:
                    raise CheckpointError(
                        f"expert {expert!r}: no tensor for parameters {missing[:5]}"
                    )

    # -- merging -----------------------------------------------------------------------

    @property
    def expert_names(self) -> tuple[str, ...]:
        return self.experts.names

    def _combine(
        self, weights: Sequence[float], base_weight: float, lo: int = 0, hi: int | None = None
    ) -> None:
        hi = self.numel if hi is None else hi
        first = 1 if base_weight == 0 else 0
        coeffs = list(weights) if first else [base_weight, *weights]
        c = torch.tensor(coeffs, dtype=self.dtype, device=self.device)
        # On the CPU, a chunk small enough for the L2 cache lets the matrix-vector kernel
        # stream each row once (about 20% faster than one call over the whole range).
        step = hi - lo if self.device.type != "cpu" else CPU_CHUNK
        for start in range(lo, hi, step):
            end = min(hi, start + step)
            torch.mv(self.stack[first:, start:end].T, c, out=self.flat[start:end])

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
        if self.layers is None:
            raise UnknownArchitectureError(
                "layer-wise averaging needs mergekit's definition of this architecture"
            )
        blocks = len(block_weights)
        for b, (lo, hi) in enumerate(self.block_ranges(blocks)):
            self._check_count(block_weights[b])
            if hi > lo:
                self._combine(block_weights[b], 0.0, lo, hi)

    @functools.cache  # noqa: B019 - one merger lives as long as its model
    def block_ranges(self, blocks: int) -> tuple[tuple[int, int], ...]:
        """Flat range ``[lo, hi)`` of each block (contiguous by construction)."""
        assert self.layers is not None
        known = {p.name for p in self.layers.places}
        ranges = [[self.numel, 0] for _ in range(blocks)]
        for n in self.names:
            b = self.layers.block_of(n, blocks) if n in known else blocks - 1
            lo, hi = self.offsets[n]
            ranges[b][0] = min(ranges[b][0], lo)
            ranges[b][1] = max(ranges[b][1], hi)
        return tuple((lo, hi) if hi > lo else (0, 0) for lo, hi in ranges)

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

    def _check_count(self, weights: Sequence[float]) -> None:
        if len(weights) != len(self.expert_names):
            raise ValueError(
                f"Got {len(weights)} weights for {len(self.expert_names)} experts "
                f"({', '.join(self.expert_names)})"
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current merged weights (views, not copies), by parameter name."""
        return {n: self.flat[lo:hi].view(self.shapes[n]) for n, (lo, hi) in self.offsets.items()}

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


def _match_key(name: str, keys) -> str | None:
    """A checkpoint key that names the same tensor with or without a leading module prefix."""
    for key in keys:
        if name.endswith("." + key) or key.endswith("." + name):
            return key
    return None
