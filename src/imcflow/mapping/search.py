"""Window search shared by VW-SDK and flex: candidate grid and the spec's tie-break.

Tie-break (mapping.md section 5, optimal search): fewest cycles, then fewest tiles, then smallest a*b,
then smallest b, then smallest a.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.geometry import LayerProblem, candidate_sizes, ceil_div


@dataclass(frozen=True)
class Grid:
    """Candidate window sizes as broadcastable columns (a) and rows (b), with their PW pixel counts."""

    a: np.ndarray  # shape (na, 1)
    b: np.ndarray  # shape (1, nb)
    pixels: np.ndarray  # PW pixels, shape (na, nb)
    windows: np.ndarray  # ceil(Ho/a) * ceil(Wo/b)

    @classmethod
    def for_problem(cls, problem: LayerProblem) -> Grid:
        """The reduced candidate grid; it depends on the layer only, so it is shared by every array."""
        return _grid(problem)

    @classmethod
    def points(cls, problem: LayerProblem, windows: Sequence[tuple[int, int]]) -> Grid:
        """The chosen window of each of n arrays, shaped (n, 1, 1) like :func:`array_axes`, to evaluate
        them with the same vectorised formulas the search used."""
        a = np.array([w[0] for w in windows], dtype=np.int64).reshape(-1, 1, 1)
        b = np.array([w[1] for w in windows], dtype=np.int64).reshape(-1, 1, 1)
        return cls(a, b, problem.pixels_h_many(a) * problem.pixels_w_many(b),
                   ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b))


@lru_cache(maxsize=8192)
def _grid(problem: LayerProblem) -> Grid:
    a, b = candidate_sizes(problem.out_h), candidate_sizes(problem.out_w)
    ph, pw = problem.pixels_h_many(a), problem.pixels_w_many(b)
    a2, b2 = a[:, None], b[None, :]
    grid = Grid(a2, b2, ph[:, None] * pw[None, :],
                ceil_div(problem.out_h, a2) * ceil_div(problem.out_w, b2))
    for arr in (grid.a, grid.b, grid.pixels, grid.windows):
        arr.setflags(write=False)  # shared through the cache
    return grid


def array_axes(arrays: Sequence[ArraySpec]) -> tuple[np.ndarray, np.ndarray]:
    """Rows R and usable columns C' of several arrays, shaped (n, 1, 1) to broadcast over a grid."""
    rows = np.array([a.rows for a in arrays], dtype=np.int64).reshape(-1, 1, 1)
    cols = np.array([a.usable_cols for a in arrays], dtype=np.int64).reshape(-1, 1, 1)
    return rows, cols


def select_many(grid: Grid, cycles: np.ndarray, tiles: np.ndarray, feasible: np.ndarray
                ) -> list[tuple[int, int] | None]:
    """For each array (leading axis), the (a, b) of the best feasible candidate under the tie-break,
    or None where no candidate is feasible. One lexsort serves every array."""
    n = cycles.shape[0]
    shape = cycles.shape
    never = np.iinfo(np.int64).max
    masked = np.where(feasible, cycles, never).reshape(n, -1)
    best = masked.min(axis=1, keepdims=True)
    # Only candidates at an array's minimum cycle count can win: tie-break among those alone.
    arr, flat = np.nonzero((masked == best) & (best < never))
    if arr.size == 0:
        return [None] * n
    a = np.broadcast_to(grid.a, shape[1:]).ravel()[flat]
    b = np.broadcast_to(grid.b, shape[1:]).ravel()[flat]
    keys = (a, b, a * b, np.broadcast_to(tiles, shape).reshape(n, -1)[arr, flat], arr)
    order = np.lexsort(keys)  # arr is the primary key: each array's winner comes first in its run
    arr_sorted = arr[order]
    firsts = order[np.flatnonzero(np.diff(arr_sorted, prepend=-1))]
    out: list[tuple[int, int] | None] = [None] * n
    for k in firsts:
        out[int(arr[k])] = (int(a[k]), int(b[k]))
    return out
