"""Speed of the pareto core against the obvious alternatives, measured side by side.

    python benchmarks/bench_pareto.py [--n 2000] [--repeat 5]

Prints, for each kernel, the time of paretomerge's path (moocore) and of the alternative
(pymoo's implementation, or a vectorised numpy brute force), and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

import pareto


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def numpy_mask(z: np.ndarray) -> np.ndarray:
    le = (z[:, None, :] <= z[None, :, :]).all(axis=2)
    lt = (z[:, None, :] < z[None, :, :]).any(axis=2)
    return ~(le & lt).any(axis=0)


def front(n: int, m: int, rng) -> np.ndarray:
    raw = rng.random((n, m))
    return raw / np.linalg.norm(raw, axis=1, keepdims=True) + 0.05 * rng.random((n, m))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="points per set (default 2000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for m in (2, 3, 4):
        z = front(args.n, m, rng)
        ref = np.full(m, 2.0)
        assert np.array_equal(pareto.pareto_mask(z), numpy_mask(z))
        rows.append(
            (
                f"pareto_mask m={m}",
                lambda z=z: pareto.pareto_mask(z),
                "numpy brute force",
                lambda z=z: numpy_mask(z),
            )
        )
        rows.append(
            (
                f"nondominated_sort m={m}",
                lambda z=z: pareto.nondominated_sort(z),
                "pymoo NonDominatedSorting",
                lambda z=z: NonDominatedSorting().do(z, return_rank=True),
            )
        )
        small = z[: min(len(z), 300)]
        rows.append(
            (
                f"hypervolume m={m} (n=300)",
                lambda s=small, r=ref: pareto.hypervolume(s, r),
                "pymoo HV",
                lambda s=small, r=ref: HV(ref_point=r)(s),
            )
        )
    print("ratio = alternative time / paretomerge time (above 1: paretomerge is faster)")
    print(f"{'kernel':34s} {'paretomerge':>12s}  {'alternative':28s} {'time':>10s} {'ratio':>7s}")
    for name, ours, alt_name, alt in rows:
        t_ours, t_alt = best_of(ours, args.repeat), best_of(alt, args.repeat)
        print(
            f"{name:34s} {t_ours * 1e3:10.2f}ms  {alt_name:28s} {t_alt * 1e3:8.2f}ms "
            f"{t_alt / t_ours:6.1f}x"
        )


if __name__ == "__main__":
    main()
