"""Search spaces for merge vectors ``x``: the simplex, a product of simplices, and a box.

Every space shares one contract, so that any search driver can work on any family:

* ``shape``: the shape of one ``x``; ``dim``: the dimension of the unit cube that maps onto it.
* ``from_unit_cube(u)``: ``(..., dim)`` points of ``[0, 1]^dim`` to ``(..., *shape)`` points
  of the space. Samplers that propose boxes (TPE, GP, pymoo's operators) search the cube;
  the map is a bijection on the interior, so nothing is rejected or renormalised.
  ``to_unit_cube(x)`` inverts it (to enqueue known points, such as a grid).
* ``sample(n, seed)``: ``n`` points drawn uniformly from the space.
* ``grid(divisions)``: a regular grid (Das-Dennis for simplices).
* ``validate(x)``: return ``x`` as an array or raise ``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod

import numpy as np
from pymoo.util.ref_dirs import get_reference_directions

SIMPLEX_ATOL = 1e-6
MAX_GRID_POINTS = 1_000_000


class SearchSpace(ABC):
    """A set of candidate vectors ``x`` with a map from the unit cube (see module docstring)."""

    shape: tuple[int, ...]
    dim: int

    @abstractmethod
    def from_unit_cube(self, u: object) -> np.ndarray:
        """Map ``(..., dim)`` points of ``[0, 1]^dim`` to ``(..., *shape)`` points."""

    @abstractmethod
    def to_unit_cube(self, x: object) -> np.ndarray:
        """Inverse of :meth:`from_unit_cube`: ``(..., *shape)`` to ``(..., dim)``."""

    @abstractmethod
    def grid(self, divisions: int) -> np.ndarray:
        """A regular grid, ``(k, *shape)``."""

    @abstractmethod
    def validate(self, x: object) -> np.ndarray:
        """Return ``x`` as a float array of ``shape``, or raise ``ValueError``."""

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` points drawn uniformly from the space, ``(n, *shape)``."""
        rng = np.random.default_rng(seed)
        return self.from_unit_cube(rng.random((int(n), self.dim)))

    def contains(self, x: object) -> bool:
        """Whether ``x`` is a valid point of the space."""
        try:
            self.validate(x)
        except ValueError:
            return False
        return True

    def _cube(self, u: object) -> np.ndarray:
        arr = np.asarray(u, dtype=np.float64)
        if arr.shape[-1:] != (self.dim,):
            raise ValueError(
                f"unit-cube points must have last dimension {self.dim}; got shape {arr.shape}"
            )
        if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
            raise ValueError("unit-cube points must lie in [0, 1]")
        return arr


def _check_grid_size(n_points: int) -> None:
    if n_points > MAX_GRID_POINTS:
        raise ValueError(
            f"the grid would have {n_points:,} points (more than {MAX_GRID_POINTS:,}); "
            "use fewer divisions or sample instead"
        )


class Simplex(SearchSpace):
    """Weights ``w`` of ``n`` experts: ``w_i >= 0`` and ``sum(w) = 1``.

    The cube map is stick-breaking with Beta inverse CDFs, which sends the uniform
    distribution on ``[0, 1]^(n-1)`` to the uniform distribution on the simplex.
    """

    def __init__(self, n: int):
        if int(n) != n or n < 1:
            raise ValueError(f"a simplex needs a positive whole number of weights; got {n}")
        self.n = int(n)
        self.shape = (self.n,)
        self.dim = self.n - 1

    def __repr__(self) -> str:
        return f"Simplex({self.n})"

    def from_unit_cube(self, u: object) -> np.ndarray:
        arr = self._cube(u)
        w = np.empty((*arr.shape[:-1], self.n))
        remaining = np.ones(arr.shape[:-1])
        for i in range(self.n - 1):
            stick = 1.0 - (1.0 - arr[..., i]) ** (1.0 / (self.n - 1 - i))
            w[..., i] = remaining * stick
            remaining = remaining * (1.0 - stick)
        w[..., self.n - 1] = remaining
        return w

    def to_unit_cube(self, x: object) -> np.ndarray:
        w = np.asarray(x, dtype=np.float64)
        if w.shape[-1:] != (self.n,):
            raise ValueError(f"simplex points must have last dimension {self.n}; got {w.shape}")
        u = np.empty((*w.shape[:-1], self.dim))
        remaining = np.ones(w.shape[:-1])
        for i in range(self.n - 1):
            with np.errstate(divide="ignore", invalid="ignore"):
                stick = np.where(remaining > 0, w[..., i] / remaining, 0.0)
            stick = np.clip(stick, 0.0, 1.0)
            u[..., i] = 1.0 - (1.0 - stick) ** (self.n - 1 - i)
            remaining = remaining - w[..., i]
        return np.clip(u, 0.0, 1.0)

    def grid(self, divisions: int) -> np.ndarray:
        """Das-Dennis grid: every ``w`` whose entries are multiples of ``1 / divisions``.

        It has ``C(divisions + n - 1, n - 1)`` points, the corners included.
        """
        if int(divisions) != divisions or divisions < 1:
            raise ValueError(f"divisions must be a positive whole number; got {divisions}")
        _check_grid_size(math.comb(int(divisions) + self.n - 1, self.n - 1))
        if self.n == 1:
            return np.ones((1, 1))
        grid = get_reference_directions("das-dennis", self.n, n_partitions=int(divisions))
        return np.asarray(grid, dtype=np.float64)

    def validate(self, x: object, name: str = "weights") -> np.ndarray:
        w = np.array(x, dtype=np.float64, copy=True)
        if w.shape != (self.n,):
            raise ValueError(f"Got {w.size} {name} for {self.n} experts: expected {self.n}")
        if not np.isfinite(w).all():
            raise ValueError(f"{name} must be finite; got {w.tolist()}")
        if (w < -SIMPLEX_ATOL).any():
            raise ValueError(f"{name} must be >= 0; got {w.tolist()}")
        total = float(w.sum())
        if abs(total - 1.0) > SIMPLEX_ATOL:
            raise ValueError(
                f"{name} {w.tolist()} sum to {total:g}, not 1: they must lie on the simplex "
                f"(within {SIMPLEX_ATOL:g}); they are not renormalised silently"
            )
        return w


class BlockSimplex(SearchSpace):
    """One simplex weight vector per block of layers: ``x`` has shape ``(blocks, n)``."""

    def __init__(self, blocks: int, n: int):
        if int(blocks) != blocks or blocks < 1:
            raise ValueError(f"blocks must be a positive whole number; got {blocks}")
        self.blocks = int(blocks)
        self.simplex = Simplex(n)
        self.n = self.simplex.n
        self.shape = (self.blocks, self.n)
        self.dim = self.blocks * self.simplex.dim

    def __repr__(self) -> str:
        return f"BlockSimplex(blocks={self.blocks}, n={self.n})"

    def from_unit_cube(self, u: object) -> np.ndarray:
        arr = self._cube(u)
        per_block = arr.reshape(*arr.shape[:-1], self.blocks, self.simplex.dim)
        return self.simplex.from_unit_cube(per_block)

    def to_unit_cube(self, x: object) -> np.ndarray:
        w = np.asarray(x, dtype=np.float64)
        if w.shape[-2:] != self.shape:
            raise ValueError(f"block weights must have shape (..., {self.blocks}, {self.n})")
        u = self.simplex.to_unit_cube(w)
        return u.reshape(*w.shape[:-2], self.dim)

    def grid(self, divisions: int) -> np.ndarray:
        """Every combination of one Das-Dennis point per block: ``G ** blocks`` points."""
        block_grid = self.simplex.grid(divisions)
        _check_grid_size(len(block_grid) ** self.blocks)
        combos = itertools.product(range(len(block_grid)), repeat=self.blocks)
        return np.stack([block_grid[list(c)] for c in combos])

    def validate(self, x: object) -> np.ndarray:
        w = np.array(x, dtype=np.float64, copy=True)
        if w.shape != self.shape:
            raise ValueError(
                f"block weights must have shape ({self.blocks} blocks, {self.n} experts); "
                f"got {w.shape}"
            )
        for b in range(self.blocks):
            self.simplex.validate(w[b], name=f"block {b} weights")
        return w


class Box(SearchSpace):
    """An axis-aligned box ``low <= x <= high`` (for example desired rewards, or densities)."""

    def __init__(self, low: object, high: object):
        lo = np.array(low, dtype=np.float64, ndmin=1)
        hi = np.array(high, dtype=np.float64, ndmin=1)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise ValueError(
                f"low and high must be 1-D with the same length; got {lo.shape} and {hi.shape}"
            )
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or not (lo <= hi).all():
            raise ValueError(f"need finite low <= high; got low={lo.tolist()}, high={hi.tolist()}")
        self.low, self.high = lo, hi
        self.shape = (lo.size,)
        self.dim = lo.size

    def __repr__(self) -> str:
        return f"Box(low={self.low.tolist()}, high={self.high.tolist()})"

    def from_unit_cube(self, u: object) -> np.ndarray:
        return self.low + self._cube(u) * (self.high - self.low)

    def to_unit_cube(self, x: object) -> np.ndarray:
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return np.clip((np.asarray(x, dtype=np.float64) - self.low) / span, 0.0, 1.0)

    def grid(self, divisions: int) -> np.ndarray:
        """``divisions + 1`` evenly spaced values per axis, every combination."""
        if int(divisions) != divisions or divisions < 1:
            raise ValueError(f"divisions must be a positive whole number; got {divisions}")
        _check_grid_size((int(divisions) + 1) ** self.dim)
        axes = [
            np.linspace(lo, hi, int(divisions) + 1)
            for lo, hi in zip(self.low, self.high, strict=True)
        ]
        return np.array(list(itertools.product(*axes)), dtype=np.float64)

    def validate(self, x: object) -> np.ndarray:
        v = np.array(x, dtype=np.float64, copy=True)
        if v.shape != self.shape:
            raise ValueError(f"Got {v.size} values for a box of {self.dim}")
        if not np.isfinite(v).all():
            raise ValueError(f"values must be finite; got {v.tolist()}")
        outside = (v < self.low) | (v > self.high)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(f"value {i} is {v[i]:g}, outside [{self.low[i]:g}, {self.high[i]:g}]")
        return v


def describe_space(space: SearchSpace) -> dict:
    """A JSON-ready description of ``space`` that :func:`space_from_description` rebuilds."""
    if isinstance(space, BlockSimplex):
        return {"kind": "block_simplex", "blocks": space.blocks, "n": space.n}
    if isinstance(space, Simplex):
        return {"kind": "simplex", "n": space.n}
    if isinstance(space, Box):
        return {"kind": "box", "low": space.low.tolist(), "high": space.high.tolist()}
    raise ValueError(f"cannot describe {space!r}")


def space_from_description(description: dict) -> SearchSpace:
    """The space that :func:`describe_space` described."""
    kind = description.get("kind")
    if kind == "simplex":
        return Simplex(description["n"])
    if kind == "block_simplex":
        return BlockSimplex(description["blocks"], description["n"])
    if kind == "box":
        return Box(description["low"], description["high"])
    raise ValueError(f"unknown space kind {kind!r}; known: simplex, block_simplex, box")
