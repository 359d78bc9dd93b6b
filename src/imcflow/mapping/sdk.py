"""SDK (shifted and duplicated kernels) as the published comparisons model it (mapping.md section 4).

A square window of n x n outputs over all input channels; the kernel is duplicated n*n times. The array
budget is frozen at im2col's AR0 x AC0 tiles, used as one virtual (R*AR0) x (C'*AC0) array, so a larger
array can make SDK slower (its budget shrinks to one tile while the window must still fit).
"""
from __future__ import annotations

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping, register_strategy
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.im2col import im2col_tiles


def sdk_window(problem: LayerProblem, array: ArraySpec, options: MappingOptions) -> int:
    """The SDK window size n: try n = 1, 2, ... until infeasible; ties go to the larger window.

    With multi-bit weights the paper search tests the physical column count C (as the published code
    does, over-filling the columns); the optimal search tests the usable columns C'.

    >>> sdk_window(LayerProblem(222, 222, 3, 3, 3, 64), ArraySpec(512, 512), MappingOptions())
    2
    """
    ar0, ac0 = im2col_tiles(problem, array)
    cols = array.cols if options.search == "paper" else array.usable_cols
    row_budget, col_budget = array.rows * ar0, cols * ac0
    best_n, best_cycles = 1, ceil_div(problem.out_h, 1) * ceil_div(problem.out_w, 1)
    n = 2
    while n <= max(problem.out_h, problem.out_w):
        pixels = problem.pixels_h(n) * problem.pixels_w(n)
        if pixels * problem.ic > row_budget or n * n * problem.oc > col_budget:
            break
        cycles = ceil_div(problem.out_h, n) * ceil_div(problem.out_w, n)
        if cycles <= best_cycles:
            best_n, best_cycles = n, cycles
        n += 1
    return best_n


class Sdk:
    name = "sdk"
    description = "square n x n output window over all channels inside im2col's frozen tile budget"

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        n = sdk_window(problem, array, options)
        ar0, ac0 = im2col_tiles(problem, array)
        # The window is spread over the AR0 x AC0 virtual array: report the average tile.
        tile_weights = n * n * problem.taps * problem.ic * problem.oc / (ar0 * ac0)
        return build_mapping(self.name, problem, array, a=n, b=n, row_tiles=ar0, col_tiles=ac0,
                             ict=problem.ic, oct=problem.oc, tile_weights=tile_weights,
                             layer_name=layer_name)


register_strategy(Sdk())
