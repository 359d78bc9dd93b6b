"""SDK (shifted and duplicated kernels) as the published comparisons model it (mapping.md section 4).

A square window of n x n outputs over all input channels; the kernel is duplicated n*n times. The array
budget is frozen at im2col's AR0 x AC0 tiles, used as one virtual (R*AR0) x (C'*AC0) array, so a larger
array can make SDK slower (its budget shrinks to one tile while the window must still fit).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.im2col import im2col_tiles
from imcflow.mapping.layout import FLAT


def sdk_windows(problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions) -> list[int]:
    """The SDK window size n on each array: try n = 1, 2, ... until infeasible; ties go to the larger
    window.

    With multi-bit weights the paper search tests the physical column count C (as the published code
    does, over-filling the columns); the optimal search tests the usable columns C'.

    >>> sdk_windows(LayerProblem(222, 222, 3, 3, 3, 64), [ArraySpec(512, 512)], MappingOptions())
    [2]
    """
    ar0 = np.array([im2col_tiles(problem, a)[0] for a in arrays], dtype=np.int64)[:, None]
    ac0 = np.array([im2col_tiles(problem, a)[1] for a in arrays], dtype=np.int64)[:, None]
    rows = np.array([a.rows for a in arrays], dtype=np.int64)[:, None]
    cols = np.array([a.cols if options.search == "paper" else a.usable_cols for a in arrays],
                    dtype=np.int64)[:, None]
    # n*n*OC <= C*AC0 bounds every feasible n whatever the map size: the range stops there.
    budget = (math.isqrt(int(c) * int(a) // problem.oc) for c, a in zip(cols[:, 0], ac0[:, 0], strict=True))
    n_max = max(1, min(max(problem.out_h, problem.out_w), max(budget)))
    n = np.arange(1, n_max + 1, dtype=np.int64)[None, :]
    pixels = problem.pixels_h_many(n) * problem.pixels_w_many(n)
    fits = (pixels * problem.ic <= rows * ar0) & (n * n * problem.oc <= cols * ac0)
    fits[:, 0] = True  # n = 1 is im2col's own budget
    # Stop at the first infeasible n: only the leading run of feasible sizes counts.
    tried = np.cumprod(fits, axis=1).astype(bool)
    cycles = ceil_div(problem.out_h, n) * ceil_div(problem.out_w, n)
    masked = np.where(tried, cycles, np.iinfo(np.int64).max)
    best = masked == masked.min(axis=1, keepdims=True)
    # The largest n among the minima (ties go to the larger window).
    return [int(n[0, row.nonzero()[0][-1]]) for row in best]


def sdk_window(problem: LayerProblem, array: ArraySpec, options: MappingOptions) -> int:
    """:func:`sdk_windows` for one array."""
    return sdk_windows(problem, [array], options)[0]


class Sdk:
    name = "sdk"
    title = "SDK"  # how reports print it
    description = "square n x n output window over all channels inside im2col's frozen tile budget"
    layout = FLAT

    def __init__(self, search: Callable[[LayerProblem, Sequence[ArraySpec], MappingOptions], list[int]]
                 = sdk_windows):
        self.search = search  # replaceable: the benchmark plugs in the plain loop

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        return self.map_many(problem, (array,), options, layer_name)[0]

    def map_many(self, problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions,
                 layer_name: str = "") -> list[LayerMapping]:
        return [self._assemble(problem, a, n, layer_name)
                for a, n in zip(arrays, self.search(problem, arrays, options), strict=False)]

    def _assemble(self, problem: LayerProblem, array: ArraySpec, n: int, layer_name: str) -> LayerMapping:
        ar0, ac0 = im2col_tiles(problem, array)
        # The window is spread over the AR0 x AC0 virtual array: report the average tile.
        tile_weights = n * n * problem.taps * problem.ic * problem.oc / (ar0 * ac0)
        return build_mapping(self.name, problem, array, layout=self.layout,
                             a=n, b=n, row_tiles=ar0, col_tiles=ac0,
                             ict=problem.ic, oct=problem.oc, tile_weights=tile_weights,
                             layer_name=layer_name)

