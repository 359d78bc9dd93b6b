"""Low-rank and group low-rank convolutions as composite layers of the mapping engine (torch-free).

A conv W (OC x IC x Kh x Kw, matrix view m = OC rows, n = IC*Kh*Kw columns) is replaced by two factors
(compression.md section A, Jeon, Rhe, Ko, DATE 2025):

* **R**, a Kh x Kw conv IC -> g*k with the original stride, padding and dilation;
* **L**, a 1x1 conv g*k -> OC on R's output map, carrying the original bias.

``g`` is the number of rank groups and ``k`` the rank of each group. ``split="input"`` (default) cuts W
along input channels, W = [W_1 | ... | W_g]: R is a grouped conv (groups = g, IC/g -> k per group) and L
is dense. ``split="output"`` cuts along output channels: R is dense (IC -> g*k) and L is grouped
(groups = g, k -> OC/g per group). g = 1 is plain low rank.

Mapping (:meth:`LowRankLayer.map_with`): R is mapped by the requested strategy like any conv; its plan
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

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from imcflow.errors import ConfigError, check_int
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Pair
from imcflow.mapping.base import LayerMapping, MappingOptions, MappingStrategy, lower_bounds
from imcflow.mapping.geometry import LayerProblem, ceil_div

Split = Literal["input", "output"]
Combine = Literal["sum", "pipelined"]
SPLITS = ("input", "output")
COMBINES = ("sum", "pipelined")


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

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["factor_r"] = self.factor_r.to_dict() if self.factor_r is not None else None
        d["factor_l"] = self.factor_l.to_dict() if self.factor_l is not None else None
        return d


@dataclass(frozen=True)
class LowRankLayer:
    """A conv replaced by its rank-``rank`` factors in ``rank_groups`` groups (a composite layer).

    Shape fields describe the original conv (so reports print the layer it replaces); ``r_layer`` and
    ``l_layer`` are the factors as :class:`~imcflow.layers.ConvLayer` records.

    >>> conv = ConvLayer("c", 16, 16, 3, input_size=8, padding=1)
    >>> lr = LowRankLayer.from_conv(conv, rank=4, rank_groups=2)
    >>> lr.r_layer.out_channels, lr.r_layer.groups, lr.l_layer.in_channels
    (8, 2, 8)
    >>> lr.weight_count        # R: 8 * 8*9 = 576, L: 16*8 = 128
    704
    """

    name: str
    in_channels: int
    out_channels: int
    kernel_size: Pair | int
    rank: int
    rank_groups: int = 1
    split: Split = "input"
    combine: Combine = "sum"
    input_size: Pair | int = (1, 1)
    stride: Pair | int = 1
    padding: Pair | int = 0
    dilation: Pair | int = 1
    bias: bool = False
    kind: str = field(default="lowrank", init=False)
    groups: int = field(default=1, init=False)  # of the replaced conv (grouped convs are not decomposed)

    def __post_init__(self) -> None:
        where = f"low-rank layer {self.name!r}"
        # The original conv validates every shape field and normalises pairs.
        base = ConvLayer(self.name, self.in_channels, self.out_channels, self.kernel_size,
                         input_size=self.input_size, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, bias=self.bias)
        for f in ("kernel_size", "input_size", "stride", "padding", "dilation"):
            object.__setattr__(self, f, getattr(base, f))
        check_int("rank", self.rank, 1, where=where)
        check_int("rank_groups", self.rank_groups, 1, where=where)
        if self.split not in SPLITS:
            raise ConfigError(f"{where}: split must be one of {SPLITS}, got {self.split!r}")
        if self.combine not in COMBINES:
            raise ConfigError(f"{where}: combine must be one of {COMBINES}, got {self.combine!r}")
        split_ch = self.in_channels if self.split == "input" else self.out_channels
        if split_ch % self.rank_groups:
            raise ConfigError(
                f"{where}: rank_groups={self.rank_groups} must divide the "
                f"{'input' if self.split == 'input' else 'output'} channels ({split_ch})")
        m, n = self.block_shape
        if self.rank > min(m, n):
            raise ConfigError(f"{where}: rank={self.rank} exceeds the full rank {min(m, n)} of each "
                              f"{m}x{n} block (rank_groups={self.rank_groups}, split={self.split}); "
                              f"allowed: 1..{min(m, n)}")

    @classmethod
    def from_conv(cls, layer: ConvLayer, rank: int, rank_groups: int = 1, split: Split = "input",
                  combine: Combine = "sum") -> LowRankLayer:
        """The factors of ``layer`` (a conv or linear record with groups = 1)."""
        if layer.groups != 1:
            raise ConfigError(f"layer {layer.name!r}: only groups=1 convolutions can be decomposed, "
                              f"got groups={layer.groups}")
        return cls(layer.name, layer.in_channels, layer.out_channels, layer.kernel_size, rank,
                   rank_groups, split, combine, layer.input_size, layer.stride, layer.padding,
                   layer.dilation, layer.bias)

    # --- shape --------------------------------------------------------------------------------------
    @property
    def block_shape(self) -> tuple[int, int]:
        """(rows, cols) of one block W_i of the matrix view that is decomposed with rank ``rank``."""
        taps = self.kernel_size[0] * self.kernel_size[1]
        if self.split == "input":
            return self.out_channels, self.in_channels // self.rank_groups * taps
        return self.out_channels // self.rank_groups, self.in_channels * taps

    @property
    def inner_channels(self) -> int:
        """g*k: R's output channels, L's input channels (K_L)."""
        return self.rank * self.rank_groups

    @property
    def conv_layer(self) -> ConvLayer:
        """The original (dense) conv this layer replaces."""
        return ConvLayer(self.name, self.in_channels, self.out_channels, self.kernel_size,
                         input_size=self.input_size, stride=self.stride, padding=self.padding,
                         dilation=self.dilation, bias=self.bias)

    @property
    def r_layer(self) -> ConvLayer:
        return ConvLayer(f"{self.name}.R", self.in_channels, self.inner_channels, self.kernel_size,
                         input_size=self.input_size, stride=self.stride, padding=self.padding,
                         dilation=self.dilation,
                         groups=self.rank_groups if self.split == "input" else 1)

    @property
    def l_layer(self) -> ConvLayer:
        return ConvLayer(f"{self.name}.L", self.inner_channels, self.out_channels, 1,
                         input_size=self.r_layer.output_size("real"),
                         groups=self.rank_groups if self.split == "output" else 1, bias=self.bias)

    # ConvLayer-like accessors, so reports, network files and the cost model read it like a conv.
    H = property(lambda self: self.input_size[0])
    W = property(lambda self: self.input_size[1])
    Kh = property(lambda self: self.kernel_size[0])
    Kw = property(lambda self: self.kernel_size[1])
    IC = property(lambda self: self.in_channels)
    OC = property(lambda self: self.out_channels)
    group_in_channels = property(lambda self: self.in_channels)
    group_out_channels = property(lambda self: self.out_channels)

    @property
    def kernel_extent(self) -> Pair:
        return self.conv_layer.kernel_extent

    def output_size(self, geometry: str = "real") -> Pair:
        return self.conv_layer.output_size(geometry)

    @property
    def weight_count(self) -> int:
        return self.r_layer.weight_count + self.l_layer.weight_count

    @property
    def macs(self) -> int:
        return self.useful_macs("real")

    def factor_problems(self, geometry: str) -> tuple[LayerProblem, LayerProblem]:
        """(R, L) as mapping problems in ``geometry``; L runs on R's output map in that geometry."""
        pr = LayerProblem.from_layer(self.r_layer, geometry)
        lg = self.l_layer.groups
        pl = LayerProblem(pr.out_h, pr.out_w, 1, 1, self.inner_channels // lg, self.out_channels // lg,
                          lg)
        return pr, pl

    def useful_macs(self, geometry: str) -> int:
        pr, pl = self.factor_problems(geometry)
        return pr.macs + pl.macs

    # --- mapping ------------------------------------------------------------------------------------
    def map_with(self, strategy: MappingStrategy, array: ArraySpec,
                 options: MappingOptions) -> LowRankMapping:
        """R by ``strategy``, L block-diagonally on R's window; cycles combined per ``combine``.

        >>> from imcflow.mapping import get_strategy
        >>> lr = LowRankLayer("c", 16, 32, 3, rank=8, input_size=10, padding=1)
        >>> m = lr.map_with(get_strategy("im2col"), ArraySpec(64, 64), MappingOptions())
        >>> m.factor_r.cycles, m.factor_l.cycles, m.cycles   # 100 pixels * 3 row tiles; 100 * 1
        (300, 100, 400)
        """
        from imcflow.mapping.network import map_layer  # network imports base; avoid a cycle at load

        r = map_layer(self.r_layer, array, strategy, options)
        pr, pl = self.factor_problems(options.geometry)
        l_plan = BlockDiagonalPlan.build(
            windows=r.windows, pixels_per_window=r.window.a * r.window.b,
            rows_per_pixel=self.inner_channels, cols_per_pixel=self.out_channels,
            weights=self.l_layer.weight_count, array=array)
        if self.combine == "sum":
            cycles = r.cycles + l_plan.cycles
        else:
            cycles = max(r.cycles, l_plan.cycles)
        arrays = r.arrays + l_plan.arrays
        cells = array.rows * array.usable_cols
        lb_mac_l, lb_col_l = lower_bounds(pl, array)
        join = (lambda x, y: x + y) if self.combine == "sum" else max
        placed = r.avg_utilization * cells * r.arrays + l_plan.weights_placed
        return LowRankMapping(
            method=r.method, layer=self.name, window=r.window, row_tiles=r.row_tiles,
            col_tiles=r.col_tiles, groups=r.groups, groups_per_tile=r.groups_per_tile,
            windows_h=r.windows_h, windows_w=r.windows_w, out_h=r.out_h, out_w=r.out_w,
            cycles=int(cycles), arrays=int(arrays),
            tile_utilization=max(r.tile_utilization, self._l_tile_weights(l_plan) / cells),
            avg_utilization=placed / (cells * arrays),
            mac_efficiency=(pr.macs + pl.macs) / (cycles * cells),
            lb_mac=int(join(r.lb_mac, lb_mac_l)), lb_col=int(join(r.lb_col, lb_col_l)),
            label=f"{r.label}+L{l_plan.pixels_per_activation}px"
                  + (f"/{l_plan.row_tiles}x{l_plan.col_tiles}" if l_plan.arrays > 1 else ""),
            fallback=r.fallback, factor_r=r, factor_l=l_plan, combine=self.combine)

    def l_matrix_mask(self) -> np.ndarray:
        """Boolean (g*k, OC): which cells of L's matrix hold a weight (block-diagonal for
        ``split="output"``)."""
        lg = self.l_layer.groups
        rows = np.arange(self.inner_channels) // (self.inner_channels // lg)
        cols = np.arange(self.out_channels) // (self.out_channels // lg)
        return rows[:, None] == cols[None, :]

    def _l_tile_weights(self, plan: BlockDiagonalPlan) -> int:
        """Weights in the fullest L array: the (0, 0) block held P times."""
        return plan.pixels_per_activation * int(
            self.l_matrix_mask()[:plan.block_rows, :plan.block_cols].sum())

    # --- records ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The keys of :meth:`ConvLayer.to_dict` (describing the replaced conv, ``kind="lowrank"``)
        plus rank, rank_groups, split, combine, the weight count and both factors."""
        d = self.conv_layer.to_dict()
        d["kind"] = self.kind
        d.update(rank=self.rank, rank_groups=self.rank_groups, split=self.split,
                 combine=self.combine, weights=self.weight_count,
                 factors={"R": self.r_layer.to_dict(), "L": self.l_layer.to_dict()})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LowRankLayer:
        """Inverse of :meth:`to_dict`."""
        conv = ConvLayer.from_dict({**d, "kind": "conv"})
        try:
            return cls.from_conv(conv, int(d["rank"]), int(d.get("rank_groups", 1)),
                                 d.get("split", "input"), d.get("combine", "sum"))
        except KeyError as exc:
            raise ConfigError(f"low-rank layer {conv.name!r}: missing field {exc}") from None


def weight_ratio(layer: LowRankLayer) -> float:
    """Weights of the factors over weights of the replaced conv (< 1 means compression)."""
    return layer.weight_count / layer.conv_layer.weight_count
