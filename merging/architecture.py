"""Where each tensor sits in a transformer: before the layers, in layer i, or after them.

The layer structure comes from mergekit's architecture definitions (one JSON per model family),
not from hand-written name patterns, so every architecture mergekit knows works here. This is
what ``layerwise`` averaging and the flat, block-contiguous weight layout stand on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

PRE, LAYER, POST = "pre", "layer", "post"


class UnknownArchitectureError(ValueError):
    """mergekit has no definition for this architecture, so its layers cannot be located."""


@dataclass(frozen=True)
class TensorPlace:
    """One tensor's role: ``pre`` (embeddings), ``layer`` (with its index) or ``post``."""

    name: str
    role: str
    layer: int | None = None


@dataclass(frozen=True)
class LayerMap:
    """The tensors of a model in order: pre weights, layer 0 ... layer L-1, post weights."""

    architecture: str
    num_layers: int
    places: tuple[TensorPlace, ...]
    layer_prefixes: tuple[str, ...]
    """For each layer, the name prefix its tensors share (``model.layers.3.``)."""

    def place(self, name: str) -> TensorPlace:
        for p in self.places:
            if p.name == name:
                return p
        raise KeyError(f"tensor {name!r} is not part of the {self.architecture} layout")

    def block_of_layer(self, blocks: int) -> np.ndarray:
        """Block index of each layer, contiguous blocks as ``numpy.array_split`` makes them.

        Block sizes differ by at most one and the earlier blocks are the larger ones.
        """
        check_blocks(blocks, self.num_layers)
        out = np.empty(self.num_layers, dtype=np.int64)
        for b, layers in enumerate(np.array_split(np.arange(self.num_layers), blocks)):
            out[layers] = b
        return out

    def block_of(self, name: str, blocks: int) -> int:
        """Block of a tensor: embeddings in the first block, final norm and head in the last."""
        p = self.place(name)
        if p.role == PRE:
            return 0
        if p.role == POST:
            return blocks - 1
        return int(self.block_of_layer(blocks)[p.layer])


def check_blocks(blocks: int, num_layers: int) -> None:
    if int(blocks) != blocks or not 1 <= blocks <= num_layers:
        raise ValueError(
            f"blocks must be a whole number from 1 to the number of layers ({num_layers}); "
            f"got {blocks}"
        )


def layer_map(config) -> LayerMap:
    """The :class:`LayerMap` of a ``transformers`` config, from mergekit's definitions.

    Optional tensors that the config ties to another one (a tied ``lm_head``) are left out:
    they are not separate parameters.
    """
    from mergekit.architecture import arch_info_for_config

    archs = list(getattr(config, "architectures", None) or [])
    if len(archs) != 1:
        raise UnknownArchitectureError(
            f"the model config names {len(archs)} architectures ({archs}); expected exactly one"
        )
    logging.getLogger("mergekit.architecture").setLevel(logging.ERROR)
    info = arch_info_for_config(config)
    if info is None or "default" not in info.modules:
        raise UnknownArchitectureError(
            f"mergekit has no architecture definition for {archs[0]}, so its layers cannot "
            "be located; interpolation still works, layer-wise averaging does not"
        )
    module = info.modules["default"].architecture
    n = int(module.num_layers(config))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    places: list[TensorPlace] = []
    for w in module.pre_weights(config):
        places.append(TensorPlace(w.name, PRE))
    prefixes = []
    for i in range(n):
        weights = module.layer_weights(i, config) or []
        places.extend(TensorPlace(w.name, LAYER, i) for w in weights)
        prefixes.append(_common_prefix([w.name for w in weights], i))
    for w in module.post_weights(config):
        if w.optional and w.tied_names and tied:
            continue
        places.append(TensorPlace(w.name, POST))
    return LayerMap(archs[0], n, tuple(places), tuple(prefixes))


def _common_prefix(names: list[str], index: int) -> str:
    """``model.layers.3.`` from the names of layer 3's tensors."""
    marker = f".{index}."
    heads = {name[: name.index(marker) + len(marker)] for name in names if marker in name}
    if len(heads) != 1:
        raise UnknownArchitectureError(
            f"cannot find one name prefix for layer {index} among {names[:3]}..."
        )
    return heads.pop()
