"""How low-rank and group low-rank convolutions are mapped (torch-free).

The layer record, :class:`~imcflow.layers.lowrank.LowRankLayer`, lives in the layer model beside
``ConvLayer`` (re-exported here with ``weight_ratio``, ``Split`` and ``Combine``); this module owns its
plan and registers :func:`map_lowrank` for it with :func:`imcflow.mapping.composite.register_composite`.

The factors, R (a Kh x Kw conv IC -> g*k with the original stride, padding and dilation) and L (a 1x1
conv g*k -> OC on R's output map), are described there (compression.md section A).

Mapping (:func:`map_lowrank`): R is mapped by the requested strategy like any conv; its plan
fixes a window of N = a*b output pixels. L is mapped block-diagonally as I_P (x) L, P pixels of that
window per activation, defined exactly as follows. L's matrix has K_L = g*k rows (one per R output
channel) and OC columns (for ``split="output"`` it is block-diagonal and the off-block cells are held as
zeros). It is cut into ``rt = ceil(K_L / R)`` row blocks and ``ct = ceil(OC / C')`` column blocks of at
most ``br = ceil(K_L / rt)`` rows and ``bc = ceil(OC / ct)`` columns (partial sums of row blocks are
added digitally, as im2col does). One array holds I_P (x) block, with

    P = min(N, floor(R / br), floor(C' / bc))          (>= 1 because br <= R and bc <= C')

so that the N outputs of one R window pass L in ``ceil(N / P) * rt * ct`` activations: exactly one when
N*K_L <= R and N*OC <= C' (the issue's "one activation per R window"), otherwise tiled. Then

    cycles_L = windows_R * ceil(N / P) * rt * ct,      arrays_L = rt * ct,
    cycles = cycles_R + cycles_L          (combine="sum", default: L runs after R on each window)
    cycles = max(cycles_R, cycles_L)      (combine="pipelined": R and L sit on their own arrays and L
                                           processes window i while R computes window i+1)

and the layer holds ``arrays_R + arrays_L`` arrays. The combined plan is a :class:`LowRankMapping`, a
:class:`~imcflow.mapping.base.LayerMapping` (so reports and totals treat it like any layer) that also
carries the R plan and the L plan for the simulator and the cost model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers.lowrank import COMBINES, SPLITS, Combine, LowRankLayer, Split, weight_ratio
from imcflow.mapping.base import LayerMapping, MappingOptions, MappingStrategy, lower_bounds
from imcflow.mapping.composite import register_composite
from imcflow.mapping.geometry import LayerProblem, ceil_div


@dataclass(frozen=True)
class BlockDiagonalPlan:
    """How L runs as I_P (x) L on the outputs of R's windows (see the module docstring).

    ``rows_per_pixel`` = K_L = g*k and ``cols_per_pixel`` = OC are L's matrix; ``block_rows`` x
    ``block_cols`` is one of its ``row_tiles`` x ``col_tiles`` blocks; ``pixels_per_activation`` = P.

    >>> p = BlockDiagonalPlan.build(windows=64, pixels_per_window=4, rows_per_pixel=16,
    ...                             cols_per_pixel=32, weights=16 * 32, array=ArraySpec(64, 128))
    >>> p.pixels_per_activation, p.activations_per_window, p.cycles, p.arrays
    (4, 1, 64, 1)
    """

    pixels_per_window: int
    pixels_per_activation: int
    rows_per_pixel: int
    cols_per_pixel: int
    row_tiles: int
    col_tiles: int
    block_rows: int
    block_cols: int
    windows: int
    weights: int  # non-zero weights of L (k*OC per group for split="output", g*k*OC for "input")

    @classmethod
    def build(cls, windows: int, pixels_per_window: int, rows_per_pixel: int, cols_per_pixel: int,
              weights: int, array: ArraySpec) -> BlockDiagonalPlan:
        rt = ceil_div(rows_per_pixel, array.rows)
        ct = ceil_div(cols_per_pixel, array.usable_cols)
        br, bc = ceil_div(rows_per_pixel, rt), ceil_div(cols_per_pixel, ct)
        p = min(pixels_per_window, array.rows // br, array.usable_cols // bc)
        return cls(pixels_per_window, p, rows_per_pixel, cols_per_pixel, rt, ct, br, bc, windows,
                   weights)

    @property
    def activations_per_window(self) -> int:
        return ceil_div(self.pixels_per_window, self.pixels_per_activation) * self.row_tiles * self.col_tiles

    @property
    def cycles(self) -> int:
        return self.windows * self.activations_per_window

    @property
    def arrays(self) -> int:
        return self.row_tiles * self.col_tiles

    @property
    def weights_placed(self) -> int:
        """Weight cells over all L arrays: every weight of L is held once per pixel slot P."""
        return self.pixels_per_activation * self.weights

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(activations_per_window=self.activations_per_window, cycles=self.cycles,
                 arrays=self.arrays)
        return d


@dataclass(frozen=True)
class LowRankMapping(LayerMapping):
    """The combined plan of a low-rank layer: the :class:`LayerMapping` fields describe the whole layer
    (``window`` and tile counts are R's; ``cycles``, ``arrays``, utilization and lower bounds cover both
    factors), ``factor_r`` is R's own plan and ``factor_l`` L's block-diagonal plan."""

    factor_r: LayerMapping | None = None
    factor_l: BlockDiagonalPlan | None = None
    combine: str = "sum"

    # The factor fields default to None only because LayerMapping's fields come first; map_lowrank
    # always sets both. These accessors say so to the type checker (and to a hand-made record).
    @property
    def r_plan(self) -> LayerMapping:
        if self.factor_r is None:
            raise ConfigError(f"layer {self.layer!r}: its low-rank plan has no R plan")
        return self.factor_r

    @property
    def l_plan(self) -> BlockDiagonalPlan:
        if self.factor_l is None:
            raise ConfigError(f"layer {self.layer!r}: its low-rank plan has no L plan")
        return self.factor_l

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["factor_r"] = self.factor_r.to_dict() if self.factor_r is not None else None
        d["factor_l"] = self.factor_l.to_dict() if self.factor_l is not None else None
        return d


def factor_problems(layer: LowRankLayer, geometry: str) -> tuple[LayerProblem, LayerProblem]:
    """(R, L) of ``layer`` as mapping problems in ``geometry``; L runs on R's output map there."""
    pr = LayerProblem.from_layer(layer.r_layer, geometry)
    lg = layer.l_layer.groups
    pl = LayerProblem(pr.out_h, pr.out_w, 1, 1, layer.inner_channels // lg, layer.out_channels // lg, lg)
    return pr, pl


def useful_macs(layer: LowRankLayer, geometry: str) -> int:
    """Multiply-accumulates of both factors in ``geometry``."""
    pr, pl = factor_problems(layer, geometry)
    return pr.macs + pl.macs


def map_lowrank(layer: LowRankLayer, strategy: MappingStrategy, array: ArraySpec,
                options: MappingOptions) -> LowRankMapping:
    """R by ``strategy``, L block-diagonally on R's window; cycles combined per ``layer.combine``.

    >>> from imcflow.mapping import get_strategy
    >>> lr = LowRankLayer("c", 16, 32, 3, rank=8, input_size=10, padding=1)
    >>> m = map_lowrank(lr, get_strategy("im2col"), ArraySpec(64, 64), MappingOptions())
    >>> m.factor_r.cycles, m.factor_l.cycles, m.cycles   # 100 pixels * 3 row tiles; 100 * 1
    (300, 100, 400)
    """
    from imcflow.mapping.network import map_layer  # network imports base; avoid a cycle at load

    r = map_layer(layer.r_layer, array, strategy, options)
    pr, pl = factor_problems(layer, options.geometry)
    l_plan = BlockDiagonalPlan.build(
        windows=r.windows, pixels_per_window=r.window.a * r.window.b,
        rows_per_pixel=layer.inner_channels, cols_per_pixel=layer.out_channels,
        weights=layer.l_layer.weight_count, array=array)
    cycles = r.cycles + l_plan.cycles if layer.combine == "sum" else max(r.cycles, l_plan.cycles)
    arrays = r.arrays + l_plan.arrays
    cells = array.rows * array.usable_cols
    lb_mac_l, lb_col_l = lower_bounds(pl, array)
    join = (lambda x, y: x + y) if layer.combine == "sum" else max
    placed = r.avg_utilization * cells * r.arrays + l_plan.weights_placed
    return LowRankMapping(
        method=r.method, layer=layer.name, window=r.window, row_tiles=r.row_tiles,
        col_tiles=r.col_tiles, groups=r.groups, groups_per_tile=r.groups_per_tile,
        windows_h=r.windows_h, windows_w=r.windows_w, out_h=r.out_h, out_w=r.out_w,
        cycles=int(cycles), arrays=int(arrays),
        tile_utilization=max(r.tile_utilization, _l_tile_weights(layer, l_plan) / cells),
        avg_utilization=placed / (cells * arrays),
        mac_efficiency=(pr.macs + pl.macs) / (cycles * cells),
        lb_mac=int(join(r.lb_mac, lb_mac_l)), lb_col=int(join(r.lb_col, lb_col_l)),
        label=f"{r.label}+L{l_plan.pixels_per_activation}px"
              + (f"/{l_plan.row_tiles}x{l_plan.col_tiles}" if l_plan.arrays > 1 else ""),
        layout=r.layout, fallback=r.fallback, factor_r=r, factor_l=l_plan, combine=layer.combine)


def _l_tile_weights(layer: LowRankLayer, plan: BlockDiagonalPlan) -> int:
    """Weights in the fullest L array: the (0, 0) block held P times."""
    return plan.pixels_per_activation * int(layer.l_matrix_mask()[:plan.block_rows, :plan.block_cols].sum())


register_composite(LowRankLayer, map_lowrank, useful_macs)

__all__ = ["COMBINES", "SPLITS", "BlockDiagonalPlan", "Combine", "LowRankLayer", "LowRankMapping", "Split",
           "factor_problems", "map_lowrank", "useful_macs", "weight_ratio"]
