"""Low-rank and group low-rank convolutions as composite layer records (torch-free, mapping-free).

A conv W (OC x IC x Kh x Kw, matrix view m = OC rows, n = IC*Kh*Kw columns) is replaced by two factors
(compression.md section A, Jeon, Rhe, Ko, DATE 2025):

* **R**, a Kh x Kw conv IC -> g*k with the original stride, padding and dilation;
* **L**, a 1x1 conv g*k -> OC on R's output map, carrying the original bias.

``g`` is the number of rank groups and ``k`` the rank of each group. ``split="input"`` (default) cuts W
along input channels, W = [W_1 | ... | W_g]: R is a grouped conv (groups = g, IC/g -> k per group) and L
is dense. ``split="output"`` cuts along output channels: R is dense (IC -> g*k) and L is grouped
(groups = g, k -> OC/g per group). g = 1 is plain low rank. ``combine`` says how the factors' cycles
add up when mapped (``sum``: L after R on each window; ``pipelined``: on their own arrays, the slower
one counts); the mapping itself is :mod:`imcflow.mapping.lowrank`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from imcflow.errors import ConfigError, check_int
from imcflow.layers.core import ConvLayer, LayerShape, Pair

Split = Literal["input", "output"]
Combine = Literal["sum", "pipelined"]
SPLITS = ("input", "output")
COMBINES = ("sum", "pipelined")


@dataclass(frozen=True)
class LowRankLayer(LayerShape):
    """A conv replaced by its rank-``rank`` factors in ``rank_groups`` groups (a composite layer).

    Shape fields describe the original conv (so reports print the layer it replaces); ``r_layer`` and
    ``l_layer`` are the factors as :class:`~imcflow.layers.ConvLayer` records. How it is mapped (R by
    a strategy, L block-diagonally) is :mod:`imcflow.mapping.lowrank`'s business.

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
        taps = self.Kh * self.Kw
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

    # The rest of the ConvLayer-like accessors (H, W, Kh, Kw, IC, OC, kernel_extent) come from
    # LayerShape, so reports, network files and the cost model read it like a conv.
    def output_size(self, geometry: str = "real") -> Pair:
        return self.conv_layer.output_size(geometry)

    @property
    def weight_count(self) -> int:
        return self.r_layer.weight_count + self.l_layer.weight_count

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (real geometry): R's plus L's."""
        return self.r_layer.macs + self.l_layer.macs

    def with_changes(self, **changes: Any) -> LowRankLayer:
        """A copy with some fields changed (validated again), as :meth:`ConvLayer.with_changes`."""
        return replace(self, **changes)

    def l_matrix_mask(self) -> np.ndarray:
        """Boolean (g*k, OC): which cells of L's matrix hold a weight (block-diagonal for
        ``split="output"``)."""
        lg = self.l_layer.groups
        rows = np.arange(self.inner_channels) // (self.inner_channels // lg)
        cols = np.arange(self.out_channels) // (self.out_channels // lg)
        return rows[:, None] == cols[None, :]

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
