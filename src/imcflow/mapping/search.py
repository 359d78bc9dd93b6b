"""Window search shared by VW-SDK and flex: candidate grid and the spec's tie-break.

Tie-break (mapping.md section 5, optimal search): fewest cycles, then fewest tiles, then smallest a*b,
then smallest b, then smallest a.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imcflow.mapping.geometry import LayerProblem, candidate_sizes, ceil_div


@dataclass(frozen=True)
class Grid:
    """Candidate window sizes as broadcastable columns (a) and rows (b), with their PW pixel counts."""

    a: np.ndarray  # shape (na, 1)
    b: np.ndarray  # shape (1, nb)
    pixels: np.ndarray  # PW pixels, shape (na, nb)
    windows: np.ndarray  # ceil(Ho/a) * ceil(Wo/b)

    @classmethod
    def for_problem(cls, problem: LayerProblem) -> "Grid":
        """The reduced candidate grid; it depends on the layer only, so it is shared by every array."""
        return _grid(problem)


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


def select(grid: Grid, cycles: np.ndarray, tiles: np.ndarray, feasible: np.ndarray
           ) -> tuple[int, int] | None:
    """Index (i, j) of the best feasible candidate under the tie-break, or None if none is feasible."""
    if not feasible.any():
        return None
    shape = cycles.shape
    a = np.broadcast_to(grid.a, shape)[feasible]
    b = np.broadcast_to(grid.b, shape)[feasible]
    order = np.lexsort((a, b, a * b, tiles[feasible], cycles[feasible]))
    flat = np.flatnonzero(feasible)[order[0]]
    return tuple(int(x) for x in np.unravel_index(flat, shape))  # type: ignore[return-value]
