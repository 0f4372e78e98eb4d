"""paretomerge's model-agnostic multi-objective core.

Pure numpy functions over objective matrices of shape ``(n, m)``: dominance and sorting,
hypervolume and its contributions, IGD+, reference points and normalisation, the knee and
preference-based choice, dominance probabilities under noise, and the search spaces of merge
vectors. Objectives carry a sense, ``"max"`` or ``"min"``; inputs are never modified.
This package never imports torch.
"""

from pareto.choice import best_for_preference, knee_point
from pareto.dominance import nondominated_sort, pareto_mask
from pareto.hypervolume import hypervolume, hypervolume_contributions
from pareto.igd import igd_plus
from pareto.reference import DEFAULT_MARGIN, Bounds, ideal_nadir, normalise, reference_point
from pareto.registry import Registry
from pareto.spaces import BlockSimplex, Box, SearchSpace, Simplex
from pareto.summary import FrontSummary, summarize_front
from pareto.table import ObjectiveSpec, ResultsTable, parse_objectives, read_results
from pareto.uncertainty import dominance_probability

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MARGIN",
    "BlockSimplex",
    "Bounds",
    "Box",
    "FrontSummary",
    "ObjectiveSpec",
    "Registry",
    "ResultsTable",
    "SearchSpace",
    "Simplex",
    "best_for_preference",
    "dominance_probability",
    "hypervolume",
    "hypervolume_contributions",
    "ideal_nadir",
    "igd_plus",
    "knee_point",
    "nondominated_sort",
    "normalise",
    "pareto_mask",
    "parse_objectives",
    "read_results",
    "reference_point",
    "summarize_front",
]
