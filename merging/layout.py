"""The flat layout of a model's parameters: one buffer, ordered by position in the network.

Every parameter of a working model is a view into one flat buffer of ``numel`` values, ordered
embeddings, layer 0 ... layer L-1, final norm and head (mergekit's architecture definitions say
which tensor is where), so that each block of layers is one contiguous range. Both mergers use
it: the resident one (:mod:`merging.resident`) and the streamed one (:mod:`merging.streamed`).
"""

from __future__ import annotations

import functools
import logging

import torch

from merging.architecture import LayerMap, UnknownArchitectureError, layer_map

LOG = logging.getLogger(__name__)


class FlatLayout:
    """Names, shapes and ``[lo, hi)`` offsets of a model's parameters in one flat buffer."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], layers: LayerMap | None):
        self.layers = layers
        self.names = self._ordered(list(shapes))
        self.shapes = {n: tuple(shapes[n]) for n in self.names}
        self.offsets: dict[str, tuple[int, int]] = {}
        total = 0
        for n in self.names:
            size = 1
            for d in self.shapes[n]:
                size *= d
            self.offsets[n] = (total, total + size)
            total += size
        self.numel = total

    @classmethod
    def of(cls, model) -> FlatLayout:
        """The layout of ``model``'s parameters (tied weights appear once)."""
        try:
            layers = layer_map(model.config)
        except UnknownArchitectureError as err:
            LOG.info("%s", err)
            layers = None
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        return cls(shapes, layers)

    def _ordered(self, names: list[str]) -> list[str]:
        if self.layers is None:
            return names
        position = {p.name: i for i, p in enumerate(self.layers.places)}
        unknown = [n for n in names if n not in position]
        if unknown:
            LOG.info("parameters outside mergekit's layout, kept last: %s", unknown)
        return sorted(names, key=lambda n: position.get(n, len(position)))

    @functools.cache  # noqa: B019 - a layout lives as long as its model
    def block_ranges(self, blocks: int) -> tuple[tuple[int, int], ...]:
        """Flat range ``[lo, hi)`` of each block (contiguous by construction)."""
        if self.layers is None:
            raise UnknownArchitectureError(
                "layer-wise averaging needs mergekit's definition of this architecture"
            )
        known = {p.name for p in self.layers.places}
        ranges = [[self.numel, 0] for _ in range(blocks)]
        for n in self.names:
            b = self.layers.block_of(n, blocks) if n in known else blocks - 1
            lo, hi = self.offsets[n]
            ranges[b][0] = min(ranges[b][0], lo)
            ranges[b][1] = max(ranges[b][1], hi)
        return tuple((lo, hi) if hi > lo else (0, 0) for lo, hi in ranges)

    def names_in(self, lo: int, hi: int) -> list[str]:
        """The parameters whose values lie in ``[lo, hi)`` (ranges are whole parameters)."""
        return [n for n in self.names if lo <= self.offsets[n][0] and self.offsets[n][1] <= hi]

    def bind(self, model, flat: torch.Tensor) -> None:
        """Make every parameter of ``model`` a view of ``flat``.

        A parameter on the meta device (a model built without weights) is replaced by a new
        one, in every module that holds it (tied weights stay one parameter)."""
        holders: dict[int, list[tuple[torch.nn.Module, str]]] = {}
        for full, param in model.named_parameters(remove_duplicate=False):
            module_name, _, attr = full.rpartition(".")
            holders.setdefault(id(param), []).append((model.get_submodule(module_name), attr))
        for n in self.names:
            lo, hi = self.offsets[n]
            view = flat[lo:hi].view(self.shapes[n])
            param = parameter(model, n)
            if not param.is_meta:
                param.data = view
                continue
            fresh = torch.nn.Parameter(view, requires_grad=False)
            for module, attr in holders[id(param)]:
                module._parameters[attr] = fresh

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each parameter's values in ``flat`` (views), by name."""
        return {n: flat[lo:hi].view(self.shapes[n]) for n, (lo, hi) in self.offsets.items()}


class FlatMerger:
    """What every merger shares: a working ``model`` whose parameters are views of ``flat``
    laid out by ``layout``, and the experts of ``experts`` that a merge weights."""

    experts: object
    layout: FlatLayout
    flat: torch.Tensor

    @property
    def expert_names(self) -> tuple[str, ...]:
        return self.experts.names

    def block_ranges(self, blocks: int) -> tuple[tuple[int, int], ...]:
        """Flat range ``[lo, hi)`` of each block (contiguous by construction)."""
        return self.layout.block_ranges(blocks)

    def _check_count(self, weights) -> None:
        if len(weights) != len(self.expert_names):
            raise ValueError(
                f"Got {len(weights)} weights for {len(self.expert_names)} experts "
                f"({', '.join(self.expert_names)})"
            )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current merged weights (views, not copies), by parameter name."""
        return self.layout.views(self.flat)


def parameter(model, name: str) -> torch.nn.Parameter:
    """The parameter object ``name`` of ``model``."""
    module_name, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_name), attr)


def match_key(name: str, keys) -> str | None:
    """A checkpoint key that names the same tensor with or without a leading module prefix
    (GPT-2 checkpoints name ``h.0.attn...`` what the model calls ``transformer.h.0.attn...``)."""
    if name in keys:
        return name
    for key in keys:
        if name.endswith("." + key) or key.endswith("." + name):
            return key
    return None
