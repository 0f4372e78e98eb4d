from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pareto import BlockSimplex, Box, Simplex


@pytest.mark.parametrize(("n", "k"), [(2, 10), (3, 5), (4, 3), (1, 4)])
def test_das_dennis_grid(n, k):
    grid = Simplex(n).grid(k)
    assert grid.shape == (math.comb(k + n - 1, n - 1), n)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    np.testing.assert_allclose(grid * k, np.round(grid * k), atol=1e-9)  # multiples of 1/k
    assert len({tuple(np.round(r, 9)) for r in grid}) == len(grid)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_cube_map_is_uniform_on_the_simplex(n):
    w = Simplex(n).sample(4000, seed=0)
    assert w.shape == (4000, n)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # uniform on the simplex = Dirichlet(1, ..., 1): each marginal is Beta(1, n - 1)
    for i in range(n):
        assert stats.kstest(w[:, i], stats.beta(1, n - 1).cdf).pvalue > 1e-3


@pytest.mark.parametrize("n", [2, 3, 4])
def test_cube_map_round_trips(n):
    space = Simplex(n)
    u = np.random.default_rng(1).random((100, n - 1))
    np.testing.assert_allclose(space.to_unit_cube(space.from_unit_cube(u)), u, atol=1e-9)
    grid = space.grid(4)
    np.testing.assert_allclose(space.from_unit_cube(space.to_unit_cube(grid)), grid, atol=1e-9)


def test_simplex_validation_never_renormalises():
    space = Simplex(2)
    np.testing.assert_allclose(space.validate([0.7, 0.3]), [0.7, 0.3])
    with pytest.raises(ValueError, match=r"sum to 1.1, not 1.*not renormalised"):
        space.validate([0.7, 0.4])
    with pytest.raises(ValueError, match="Got 3 weights for 2 experts"):
        space.validate([0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        space.validate([1.5, -0.5])
    assert not space.contains([0.5, 0.6])


def test_block_simplex():
    space = BlockSimplex(3, 2)
    assert space.shape == (3, 2)
    assert space.dim == 3
    x = space.sample(50, seed=0)
    assert x.shape == (50, 3, 2)
    np.testing.assert_allclose(x.sum(axis=-1), 1.0)
    np.testing.assert_allclose(space.from_unit_cube(space.to_unit_cube(x)), x, atol=1e-9)
    grid = space.grid(2)
    assert grid.shape == (3**3, 3, 2)
    assert len({g.tobytes() for g in grid}) == 27
    space.validate([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    with pytest.raises(ValueError, match="block 1 weights"):
        space.validate([[0.9, 0.1], [0.5, 0.6], [0.1, 0.9]])
    with pytest.raises(ValueError, match=r"shape \(3 blocks, 2 experts\)"):
        space.validate([[0.5, 0.5]])


def test_grid_size_is_capped():
    with pytest.raises(ValueError, match="more than"):
        BlockSimplex(12, 3).grid(10)


def test_box():
    space = Box([0.0, -1.0], [1.0, 1.0])
    x = space.from_unit_cube([[0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_allclose(x, [[0.5, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(space.to_unit_cube(x), [[0.5, 0.5], [0.0, 1.0]])
    assert space.grid(2).shape == (9, 2)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        space.validate([0.5, 2.0])
    with pytest.raises(ValueError, match="low <= high"):
        Box([1.0], [0.0])


def test_unit_cube_input_is_checked():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Simplex(3).from_unit_cube([[0.5, 1.5]])
    with pytest.raises(ValueError, match="last dimension 2"):
        Simplex(3).from_unit_cube([[0.5]])
