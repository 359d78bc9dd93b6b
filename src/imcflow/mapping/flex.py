"""flex: imcflow's own flexible-window mapping (mapping.md section 5b), never worse than im2col, SDK or
VW-SDK.

For a window (a, b) the tile matrix is the VW-SDK one with OCt = OC and ICt = IC: rows are
``c*PWh*PWw + pixel`` (channel-major, PW pixel row-major) and columns ``(wy*b + wx)*OC + o``. Row tiles
cut that matrix every R rows and column tiles every C' columns, at arbitrary positions (partial sums of
row tiles are added digitally, as im2col does with a cut kernel):

    Tr = ceil(PWh*PWw*IC / R),   Tc = ceil(a*b*OC / C'),   cycles = ceil(Ho/a)*ceil(Wo/b)*Tr*Tc

Extension for grouped convolutions (depthwise included): when one group's window fits one tile
(Tr = Tc = 1), ``gp`` groups are placed block-diagonally in the same tile, with
gp = min(R // rows, C' // cols, groups); one activation then serves gp groups. The other strategies map
a grouped conv as ``groups`` independent convs, as the issue specifies.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping
from imcflow.mapping.geometry import LayerProblem, ceil_div, window_pixel_index
from imcflow.mapping.layout import FLAT
from imcflow.mapping.search import Grid, WindowCap, array_axes, search_windows


def flex_tiles(grid: Grid, problem: LayerProblem, r, c):
    """Tr, Tc, groups per tile, cycles and tiles of every candidate window; ``r``/``c`` (R, C') are
    scalars or (n, 1, 1) arrays to evaluate n arrays at once."""
    rows = grid.pixels * problem.ic
    cols = grid.a * grid.b * problem.oc
    tr, tc = ceil_div(rows, r), ceil_div(cols, c)
    single = (tr == 1) & (tc == 1)
    gp = np.where(single, np.minimum(np.minimum(r // rows, c // cols), problem.groups), 1)
    tile_sets = ceil_div(problem.groups, gp)
    cycles = grid.windows * tr * tc * tile_sets
    return tr, tc, gp, cycles, tr * tc * tile_sets


def first_tile_weights(problem: LayerProblem, array: ArraySpec, a: int, b: int) -> int:
    """Weight cells in tile (0, 0), the fullest one: full channels plus the pixels of the channel the
    row cut splits, per output offset, for the output channels the column cut keeps."""
    pixels = problem.pixels_h(a) * problem.pixels_w(b)
    return _tile_weights(problem, a, b, min(array.rows, pixels * problem.ic),
                         min(array.usable_cols, a * b * problem.oc))


@lru_cache(maxsize=65536)
def _tile_weights(problem: LayerProblem, a: int, b: int, rows: int, cols: int) -> int:
    # Keyed by the rows and columns actually used: arrays larger than the window share one entry.
    full_ch, rem_px = divmod(rows, problem.pixels_h(a) * problem.pixels_w(b))
    # Taps of each output offset that read one of the first rem_px pixels of the split channel.
    partial = (window_pixel_index(problem, a, b) < rem_px).sum(axis=1)
    per_col = full_ch * problem.taps + partial  # weights in one column of each offset
    full_off, rem_oc = divmod(cols, problem.oc)
    total = int(per_col[:full_off].sum()) * problem.oc
    if full_off < a * b:
        total += int(per_col[full_off]) * rem_oc
    return total


def optimal_flex_windows(problem: LayerProblem, arrays: Sequence[ArraySpec]) -> list[tuple[int, int]]:
    """The (a, b) with the fewest cycles on each array under the spec's tie-break (reduced grid)."""
    def evaluate(grid: Grid, rows: np.ndarray, cols: np.ndarray):
        _, _, _, cycles, tiles = flex_tiles(grid, problem, rows, cols)
        return cycles, tiles, np.ones((1, 1, 1), dtype=bool)

    return search_windows(problem, arrays, evaluate, flex_window_cap(problem, arrays),  # type: ignore[return-value]
                          "flex window search")


def flex_window_cap(problem: LayerProblem, arrays: Sequence[ArraySpec]) -> WindowCap:
    """The largest window area a*b that can still beat ``best`` cycles on some array.

    One activation covers at most R x C' cells and a window needs ``groups * rows * cols`` of them
    (block-diagonal packing included), with rows >= a*b*IC and cols = a*b*OC, so
    cycles >= ceil(Ho/a)*ceil(Wo/b) * groups*rows*cols / (R*C') >= Ho*Wo*groups*a*b*IC*OC / (R*C').
    A window whose bound exceeds the best known cycles cannot win; before any search the (1, 1)
    window's cycles (at most Ho*Wo*ceil(Kh*Kw*IC/R)*ceil(OC/C')*groups) are the best known.

    >>> cap = flex_window_cap(LayerProblem(10**9, 10**9, 3, 3, 64, 64), [ArraySpec(512, 512)])
    >>> cap(None)   # 2 row tiles x 1 column tile x 512*512 cells / (64*64): independent of H, W
    128
    """
    outputs = problem.out_h * problem.out_w
    need = outputs * problem.groups * problem.ic * problem.oc
    first = [outputs * ceil_div(problem.pixels_h(1) * problem.pixels_w(1) * problem.ic, a.rows)
             * ceil_div(problem.oc, a.usable_cols) * problem.groups for a in arrays]

    def cap(best: np.ndarray | None) -> int:
        known = first if best is None else [min(f, int(b)) for f, b in zip(first, best, strict=False)]
        return max(k * a.rows * a.usable_cols // need for k, a in zip(known, arrays, strict=False))

    return cap


class Flex:
    name = "flex"
    title = "flex"  # how reports print it
    description = "any window, tiles cut mid-channel; groups packed block-diagonally; never worse"
    layout = FLAT

    def __init__(self, search: Callable[[LayerProblem, Sequence[ArraySpec]], list[tuple[int, int]]]
                 = optimal_flex_windows):
        self.search = search  # replaceable: the benchmark plugs in the plain loop

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        return self.map_many(problem, (array,), options, layer_name)[0]

    def map_many(self, problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions,
                 layer_name: str = "") -> list[LayerMapping]:
        chosen = self.search(problem, arrays)
        # Tiles of every chosen window at once, with the same formulas the search used.
        tr, tc, gp, _, _ = flex_tiles(Grid.points(problem, chosen), problem, *array_axes(arrays))
        return [self._assemble(problem, array, a, b, int(tr_), int(tc_), int(gp_), layer_name)
                for array, (a, b), tr_, tc_, gp_ in zip(arrays, chosen, tr.ravel(), tc.ravel(),
                                                         gp.ravel(), strict=False)]

    def _assemble(self, problem: LayerProblem, array: ArraySpec, a: int, b: int, tr_: int, tc_: int,
                  gp_: int, layer_name: str) -> LayerMapping:
        if gp_ > 1:
            tile_weights = gp_ * a * b * problem.taps * problem.ic * problem.oc
        else:
            tile_weights = first_tile_weights(problem, array, a, b)
        return build_mapping(self.name, problem, array, layout=self.layout,
                             a=a, b=b, row_tiles=tr_, col_tiles=tc_,
                             ict=ceil_div(problem.ic, tr_), oct=ceil_div(problem.oc, tc_),
                             tile_weights=tile_weights, groups_per_tile=gp_, layer_name=layer_name)

