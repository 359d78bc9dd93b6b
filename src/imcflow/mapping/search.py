"""Window search shared by VW-SDK and flex: candidate grid, the spec's tie-break, and the bounds that
keep the search's time and memory independent of the raw map size.

Tie-break (mapping.md section 5, optimal search): fewest cycles, then fewest tiles, then smallest a*b,
then smallest b, then smallest a.

Bounded work (README "Limits"): a strategy gives the largest window area a*b that can still win
(VW-SDK: the array, since a whole channel of the window must fit; flex: a cycle lower bound against the
best window found so far), so a 10^9 x 10^9 map searches the same few thousand windows as a 224 x 224
one. The candidates are evaluated in blocks of at most :data:`CHUNK_ELEMENTS` (window, array) pairs,
and a search that would evaluate more than :data:`MAX_CANDIDATES` is refused before it runs long.
Cycle counts are 64-bit: candidates whose count reaches :data:`COUNT_LIMIT` are screened out in
floating point first, and a layer none of whose windows stays below it is refused.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping.geometry import LayerProblem, candidate_sizes, ceil_div

CHUNK_ELEMENTS = 1 << 20  # (window, array) pairs evaluated at once: ~8 MiB per temporary array
MAX_CANDIDATES = 1 << 25  # (window, array) pairs one layer shape may evaluate (a few seconds)
COUNT_LIMIT = 1 << 61  # cycle counts must stay below this (int64 arithmetic with headroom)

# evaluate(grid, R, C') -> (cycles, tiles, feasible), broadcast to (n_arrays, na, nb)
Evaluate = Callable[["Grid", np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
# window_cap(best cycles per array so far, or None before any) -> largest a*b that can still win
WindowCap = Callable[["np.ndarray | None"], int]


@dataclass(frozen=True)
class Grid:
    """Candidate window sizes as broadcastable columns (a) and rows (b), with their PW pixel counts."""

    a: np.ndarray  # shape (na, 1)
    b: np.ndarray  # shape (1, nb)
    pixels: np.ndarray  # PW pixels, shape (na, nb)
    windows: np.ndarray  # ceil(Ho/a) * ceil(Wo/b)

    @classmethod
    def for_problem(cls, problem: LayerProblem, cap_h: int | None = None,
                    cap_w: int | None = None) -> Grid:
        """The reduced candidate grid (window sizes up to ``cap_h`` x ``cap_w``); it depends on the
        layer only, so it is shared by every array."""
        return _grid(problem, cap_h, cap_w)

    @classmethod
    def block(cls, problem: LayerProblem, a: np.ndarray, b: np.ndarray) -> Grid:
        """The grid of the window sizes ``a`` x ``b`` (1-D arrays)."""
        a2, b2 = a[:, None], b[None, :]
        return cls(a2, b2, problem.pixels_h_many(a)[:, None] * problem.pixels_w_many(b)[None, :],
                   ceil_div(problem.out_h, a2) * ceil_div(problem.out_w, b2))

    def as_float(self) -> Grid:
        """The same grid in float64, to screen counts that would overflow int64."""
        return Grid(*(x.astype(np.float64) for x in (self.a, self.b, self.pixels, self.windows)))

    @classmethod
    def points(cls, problem: LayerProblem, windows: Sequence[tuple[int, int]]) -> Grid:
        """The chosen window of each of n arrays, shaped (n, 1, 1) like :func:`array_axes`, to evaluate
        them with the same vectorised formulas the search used."""
        a = np.array([w[0] for w in windows], dtype=np.int64).reshape(-1, 1, 1)
        b = np.array([w[1] for w in windows], dtype=np.int64).reshape(-1, 1, 1)
        return cls(a, b, problem.pixels_h_many(a) * problem.pixels_w_many(b),
                   ceil_div(problem.out_h, a) * ceil_div(problem.out_w, b))


@lru_cache(maxsize=8192)
def _grid(problem: LayerProblem, cap_h: int | None = None, cap_w: int | None = None) -> Grid:
    grid = Grid.block(problem, candidate_sizes(problem.out_h, cap_h),
                      candidate_sizes(problem.out_w, cap_w))
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
    ia, ib = np.divmod(flat, shape[2])
    a = grid.a[:, 0][ia]
    b = grid.b[0][ib]
    tiles = tiles.reshape(n, -1) if tiles.shape == shape else np.broadcast_to(tiles, shape).reshape(n, -1)
    order = np.lexsort((a, b, a * b, tiles[arr, flat], arr))  # arr first: each array's winner leads
    arr_sorted = arr[order]
    firsts = order[np.flatnonzero(np.r_[True, arr_sorted[1:] != arr_sorted[:-1]])]
    out: list[tuple[int, int] | None] = [None] * n
    for k in firsts.tolist():
        out[int(arr[k])] = (int(a[k]), int(b[k]))
    return out


def search_windows(problem: LayerProblem, arrays: Sequence[ArraySpec], evaluate: Evaluate,
                   window_cap: WindowCap, what: str) -> list[tuple[int, int] | None]:
    """The best feasible (a, b) on each array under the tie-break, or None where none is feasible.

    Only windows with a*b <= ``window_cap(best)`` are evaluated; the cap must never exclude a window
    that could win (it bounds the search, never changes its result). The first block holds the
    smallest windows, so a cap that tightens with the best cycles found prunes the rest.
    """
    rows, cols = array_axes(arrays)
    n = len(arrays)
    cap = window_cap(None)
    a_all = candidate_sizes(problem.out_h, min(cap, problem.out_h))
    b_all = candidate_sizes(problem.out_w, min(cap, problem.out_w))
    if a_all.size * b_all.size * n <= CHUNK_ELEMENTS:  # the usual case: one block, cached grid
        grid = Grid.for_problem(problem, min(cap, problem.out_h), min(cap, problem.out_w))
        cycles, tiles, feasible, dropped = _evaluate(evaluate, grid, problem, rows, cols)
        found = select_many(grid, cycles, tiles, feasible)
        _check_overflow(found, dropped, problem, what)
        return found
    best: list[tuple[int, int, int, int, int] | None] = [None] * n  # tie-break keys
    any_dropped = np.zeros(n, dtype=bool)
    evaluated, i = 0, 0
    while i < a_all.size and a_all[i] <= cap:
        bs = b_all[:np.searchsorted(b_all, cap // int(a_all[i]), side="right")]
        band = a_all[i:i + max(1, CHUNK_ELEMENTS // (bs.size * n))]
        band = band[band <= cap]
        evaluated += band.size * bs.size * n
        if evaluated > MAX_CANDIDATES:
            raise ConfigError(
                f"{what}: the window search would evaluate more than {MAX_CANDIDATES:,} (window, "
                f"array) candidates for an output map of {problem.out_h} x {problem.out_w} "
                f"(largest useful window area {cap:,}); use a larger kernel budget per array or "
                f"fewer arrays per call, or map this layer with im2col/sdk")
        grid = Grid.block(problem, band, bs)
        cycles, tiles, feasible, dropped = _evaluate(evaluate, grid, problem, rows, cols)
        any_dropped |= dropped
        shape = cycles.shape
        for k, ab in enumerate(select_many(grid, cycles, tiles, feasible)):
            if ab is None:
                continue
            ia, ib = int(np.searchsorted(band, ab[0])), int(np.searchsorted(bs, ab[1]))
            key = (int(cycles[k, ia, ib]), int(np.broadcast_to(tiles, shape)[k, ia, ib]),
                   ab[0] * ab[1], ab[1], ab[0])
            if best[k] is None or key < best[k]:  # type: ignore[operator]
                best[k] = key
        cycles_so_far = np.array([np.iinfo(np.int64).max if k is None else k[0] for k in best],
                                 dtype=np.int64)
        cap = min(cap, window_cap(cycles_so_far))
        i += band.size
    chosen: list[tuple[int, int] | None] = [None if k is None else (k[4], k[3]) for k in best]
    _check_overflow(chosen, any_dropped, problem, what)
    return chosen


def _evaluate(evaluate: Evaluate, grid: Grid, problem: LayerProblem, rows: np.ndarray,
              cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``evaluate`` on a grid, in int64 when no count can overflow; otherwise candidates whose count
    (computed in float64 first) reaches :data:`COUNT_LIMIT` are marked infeasible. Also returns, per
    array, whether a feasible candidate was dropped that way."""
    # An upper bound of every count the strategies form (any array has R, C' >= 1): tiles per window
    # at most max(channels, rows or columns of the window's tile matrix).
    a_max, b_max = int(grid.a.max()), int(grid.b.max())
    tile_rows = problem.pixels_h(a_max) * problem.pixels_w(b_max) * problem.ic
    tile_cols = a_max * b_max * problem.oc
    windows = ceil_div(problem.out_h, int(grid.a.min())) * ceil_div(problem.out_w, int(grid.b.min()))
    if max(tile_rows, tile_cols, windows) >= COUNT_LIMIT:
        raise ConfigError(
            f"layer of {problem.out_h} x {problem.out_w} outputs, {problem.ic} -> {problem.oc} "
            f"channels: its window tile matrices ({tile_rows:,} rows, {tile_cols:,} columns) exceed "
            f"the mapping limit of 2^61; allowed: smaller layers")
    bound = windows * max(problem.ic, tile_rows) * max(problem.oc, tile_cols) * problem.groups
    cycles, tiles, feasible = evaluate(grid, rows, cols)
    n = cycles.shape[0]
    if bound < COUNT_LIMIT:
        return cycles, tiles, feasible, np.zeros(n, dtype=bool)
    cycles_f, _, _ = evaluate(grid.as_float(), rows.astype(np.float64), cols.astype(np.float64))
    fits = cycles_f < COUNT_LIMIT
    dropped = np.asarray((feasible & ~fits).reshape(n, -1).any(axis=1))
    return cycles, tiles, np.asarray(feasible & fits), dropped


def _check_overflow(found: list[tuple[int, int] | None], dropped: np.ndarray, problem: LayerProblem,
                    what: str) -> None:
    for ab, lost in zip(found, dropped, strict=False):
        if ab is None and lost:
            raise ConfigError(
                f"{what}: every window of this {problem.out_h} x {problem.out_w}-output layer needs "
                f"2^61 or more cycles, past the mapping limit (cycle counts are 64-bit)")
