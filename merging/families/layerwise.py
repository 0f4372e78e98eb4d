"""``layerwise`` (adaptive model averaging, Lin et al.): one simplex weight vector per block.

The transformer layers are split into ``blocks`` contiguous blocks like ``numpy.array_split``
(sizes differ by at most one, earlier blocks larger); the embeddings belong to the first block
and the final norm and head to the last. A head tied to the embeddings is one tensor and
follows the first block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from merging.architecture import LayerMap
from merging.families.base import Family, Row, WeightMerger, register
from merging.recipe import MergeRecipe
from pareto.spaces import BlockSimplex

DEFAULT_BLOCKS = 3


@register("layerwise")
class Layerwise(Family):
    per_block = True
    x_caption = "weights per block of layers (rows) and expert (columns)"

    def __init__(self, experts, blocks: int = DEFAULT_BLOCKS):
        super().__init__(experts)
        self._space = BlockSimplex(blocks, len(self.experts))
        self.blocks = self._space.blocks

    @property
    def space(self) -> BlockSimplex:
        return self._space

    def recipe(self, x: object) -> MergeRecipe:
        w = self._x(x)
        return MergeRecipe(
            family=self.name,
            experts=self.experts,
            block_weights=tuple(tuple(map(float, row)) for row in w),
        )

    @staticmethod
    def apply(recipe: MergeRecipe, merger: WeightMerger) -> None:
        merger.set_blockwise(recipe.block_weights)

    @classmethod
    def x_from_groups(cls, groups, blocks):
        """One ``--weights`` group per block; ``--blocks`` defaults to the number of groups."""
        blocks = blocks or len(groups)
        if len(groups) != blocks:
            raise ValueError(f"--weights has {len(groups)} group(s) for --blocks {blocks}")
        return groups, {"blocks": blocks}

    @classmethod
    def x_rows(cls, recipe: Mapping, experts: Sequence[str]) -> list[Row]:
        """One row per block and expert."""
        return [
            (f"block {b}", e, float(w))
            for b, weights in enumerate(recipe["block_weights"])
            for e, w in zip(experts, weights, strict=True)
        ]

    @staticmethod
    def mergekit_config(
        recipe: MergeRecipe, base: str, experts: dict[str, str], layers: LayerMap | None = None
    ) -> dict:
        """A ``linear`` merge whose weights are conditional on the tensor name (mergekit filters).

        Each layer gets a filter on its name prefix (``model.layers.3.``), each embedding,
        norm and head tensor one on its full name; longer filters come first, so the first
        filter mergekit finds in a name is the right one.
        """
        if layers is None:
            raise ValueError("a layerwise mergekit configuration needs the model's LayerMap")
        blocks = len(recipe.block_weights)
        block_of_layer = layers.block_of_layer(blocks)
        filters: list[tuple[str, int]] = [
            (prefix, int(block_of_layer[i])) for i, prefix in enumerate(layers.layer_prefixes)
        ]
        filters += [
            (p.name, layers.block_of(p.name, blocks)) for p in layers.places if p.role != "layer"
        ]
        filters.sort(key=lambda f: -len(f[0]))
        models = []
        for e, name in enumerate(recipe.experts):
            weight = [
                {"filter": text, "value": recipe.block_weights[block][e]} for text, block in filters
            ]
            models.append({"model": experts[name], "parameters": {"weight": weight}})
        return {
            "merge_method": "linear",
            "models": models,
            "parameters": {"normalize": False},
            "dtype": "float32",
        }
