"""im2col: each output channel's unrolled kernel is one column, one output pixel per activation
(mapping.md section 3). The unrolled kernel may be cut at any element across row tiles."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from imcflow.hardware.array import ArraySpec
from imcflow.mapping.base import LayerMapping, MappingOptions, build_mapping
from imcflow.mapping.geometry import LayerProblem, ceil_div
from imcflow.mapping.layout import FLAT


@lru_cache(maxsize=65536)
def im2col_tiles(problem: LayerProblem, array: ArraySpec) -> tuple[int, int]:
    """(AR, AC) = (ceil(Kh*Kw*IC/R), ceil(OC/C')); also SDK's frozen budget.

    >>> im2col_tiles(LayerProblem(26, 26, 3, 3, 256, 512), ArraySpec(512, 512))
    (5, 1)
    """
    return (ceil_div(problem.taps * problem.ic, array.rows), ceil_div(problem.oc, array.usable_cols))


class Im2col:
    name = "im2col"
    title = "im2col"  # how reports print it
    description = "one output pixel per activation; cycles = Ho*Wo*ceil(KhKwIC/R)*ceil(OC/C')"
    layout = FLAT

    def map_many(self, problem: LayerProblem, arrays: Sequence[ArraySpec], options: MappingOptions,
                 layer_name: str = "") -> list[LayerMapping]:
        return [self.map(problem, a, options, layer_name) for a in arrays]

    def map(self, problem: LayerProblem, array: ArraySpec, options: MappingOptions,
            layer_name: str = "") -> LayerMapping:
        ar, ac = im2col_tiles(problem, array)
        tile_weights = min(array.rows, problem.taps * problem.ic) * min(array.usable_cols, problem.oc)
        return build_mapping(self.name, problem, array, layout=self.layout,
                             a=1, b=1, row_tiles=ar, col_tiles=ac,
                             ict=ceil_div(problem.ic, ar), oct=ceil_div(problem.oc, ac),
                             tile_weights=tile_weights, label="im2col", layer_name=layer_name)

