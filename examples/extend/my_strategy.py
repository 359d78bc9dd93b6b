"""A mapping strategy in one file: a fixed 2x2 output window over all channels, tiles cut like
flex's (rows every R, columns every C': the flat layout), so the simulator and the cost model need
nothing else."""
from imcflow.mapping.base import build_mapping
from imcflow.mapping.geometry import ceil_div
from imcflow.mapping.layout import FLAT


class Window2x2:
    name = "window2x2"
    title = "2x2"
    description = "a fixed 2x2 output window over all channels, cut every R rows and C' columns"
    layout = FLAT

    def map(self, problem, array, options, layer_name=""):
        a, b = min(2, problem.out_h), min(2, problem.out_w)
        rows = problem.pixels_h(a) * problem.pixels_w(b) * problem.ic  # one PW of every channel
        cols = a * b * problem.oc                                       # every output of the window
        tr, tc = ceil_div(rows, array.rows), ceil_div(cols, array.usable_cols)
        return build_mapping(self.name, problem, array, layout=self.layout, a=a, b=b,
                             row_tiles=tr, col_tiles=tc, ict=ceil_div(problem.ic, tr),
                             oct=ceil_div(problem.oc, tc), layer_name=layer_name,
                             tile_weights=a * b * problem.taps * problem.ic * problem.oc / (tr * tc))
