"""Crossbar tiles of one layer, built from its mapping plan (mapping.md section 6).

The plan (:class:`~imcflow.mapping.base.LayerMapping`) fixes the window (a, b), the PW extent, the tile
counts and how many groups share a tile. This module turns it into explicit weight matrices; it never
chooses a window of its own.

Per *tile set* (a block of ``groups_per_tile`` groups; one group unless flex packs several) the layer is
one matrix-vector product per window, the *set matrix* of shape ``K x N``:

* row ``r = gl*IC*P + c*P + y*PWw + x``: group ``gl`` of the set, input channel ``c`` of the group and PW
  pixel ``(y, x)`` (``P = PWh*PWw``; channel-major, pixel row-major, section 6);
* column ``n = gl*a*b*OC + (wy*b + wx)*OC + o``: output offset ``(wy, wx)`` and output channel ``o``;
* cell ``W[o, c, i, j]`` where tap ``(i, j)`` of offset ``(wy, wx)`` reads PW pixel ``(y, x)``
  (:func:`~imcflow.mapping.geometry.tap_pixel_index`), else 0. Groups of one set are block-diagonal.

Physical tiles are a grid of row slices x column index sets of that matrix. How they are cut is the
plan's own :class:`~imcflow.mapping.layout.TileLayout` (``plan.layout.cut``): this module never looks a
strategy up by name, so a new strategy whose plans carry a layout simulates without touching it.

Anything in which the built tiles disagree with the plan (tile counts, a tile larger than R x C') is
listed in :attr:`LayerTiles.plan_mismatches`; the verifier reports it as a failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.mapping.base import LayerMapping, MappingOptions
from imcflow.mapping.geometry import LayerProblem, axis_positions, ceil_div, tap_pixel_index
from imcflow.mapping.layout import TileGeometry
from imcflow.mapping.network import map_layer
from imcflow.validate import check_type


@dataclass(frozen=True)
class Tile:
    """One physical array: its integer weight matrix and what every row and column means.

    ``row_channel[r]`` is the layer's input channel, ``row_y/row_x`` the input offset of row r from the
    window origin (in padded input pixels); ``col_channel[c]`` the output channel and ``col_wy/col_wx``
    the output offset inside the window of column c. ``weights[r, c]`` is the weight that cell holds.
    """

    set_index: int
    row_tile: int
    col_tile: int
    weights: np.ndarray
    row_channel: np.ndarray
    row_y: np.ndarray
    row_x: np.ndarray
    col_channel: np.ndarray
    col_wy: np.ndarray
    col_wx: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.weights.shape
        return rows, cols

    def to_dict(self) -> dict[str, Any]:
        return {"set": self.set_index, "row_tile": self.row_tile, "col_tile": self.col_tile,
                "rows": self.shape[0], "cols": self.shape[1],
                "nonzero_cells": int(np.count_nonzero(self.weights))}

    def to_frame(self):
        """One row per non-zero cell with its meaning; pandas imported only here."""
        import pandas as pd

        r, c = np.nonzero(self.weights)
        return pd.DataFrame({"row": r, "col": c, "weight": self.weights[r, c],
                             "in_channel": self.row_channel[r], "y": self.row_y[r], "x": self.row_x[r],
                             "out_channel": self.col_channel[c], "wy": self.col_wy[c],
                             "wx": self.col_wx[c]})


@dataclass(frozen=True)
class LayerTiles:
    """Every tile of one layer under one mapping plan.

    ``set_matrices`` has shape ``(sets, K, N)`` (float64 holding integers); tile ``(s, i, j)`` is
    ``set_matrices[s, r0:r1][:, cols_j]`` with ``(r0, r1) = row_slices[i]`` and ``cols_j = col_index[j]``.
    """

    layer: ConvLayer
    plan: LayerMapping
    array: ArraySpec
    geometry: str
    geo: TileGeometry
    row_slices: tuple[tuple[int, int], ...]
    col_index: tuple[np.ndarray, ...] = field(repr=False)
    set_matrices: torch.Tensor = field(repr=False)
    plan_mismatches: tuple[str, ...] = ()
    weight: torch.Tensor | None = field(default=None, repr=False)  # (OC, IC/groups, Kh, Kw) float64

    @property
    def tiles_per_set(self) -> int:
        return len(self.row_slices) * len(self.col_index)

    @property
    def tile_count(self) -> int:
        return self.tiles_per_set * self.geo.sets

    def tile(self, s: int, i: int, j: int) -> Tile:
        """The explicit tile ``j`` of row slice ``i`` in set ``s`` with the meaning of its cells."""
        for name, v, hi in (("set", s, self.geo.sets), ("row tile", i, len(self.row_slices)),
                            ("column tile", j, len(self.col_index))):
            if not 0 <= v < hi:
                raise ConfigError(f"layer {self.layer.name!r}: {name} index must be in [0, {hi}), got {v}")
        r0, r1 = self.row_slices[i]
        cols = self.col_index[j]
        rows = np.arange(r0, r1)
        g = self.geo
        gl_r, rem = np.divmod(rows, g.rows_per_group)
        c, pix = np.divmod(rem, g.pixels)
        y, x = np.divmod(pix, len(g.pos_w))
        gl_c, remc = np.divmod(cols, g.cols_per_group)
        off, o = np.divmod(remc, g.problem.oc)
        wy, wx = np.divmod(off, g.b)
        first_group = s * g.groups_per_set
        w = self.set_matrices[s, r0:r1][:, torch.as_tensor(cols)].numpy().round().astype(np.int64)
        return Tile(s, i, j, w,
                    row_channel=(first_group + gl_r) * g.problem.ic + c,
                    row_y=np.asarray(g.pos_h)[y], row_x=np.asarray(g.pos_w)[x],
                    col_channel=(first_group + gl_c) * g.problem.oc + o, col_wy=wy, col_wx=wx)

    def tiles(self):
        """Iterate over every tile of the layer (set-major, then row tile, then column tile)."""
        for s in range(self.geo.sets):
            for i in range(len(self.row_slices)):
                for j in range(len(self.col_index)):
                    yield self.tile(s, i, j)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer.name, "method": self.plan.method, "a": self.geo.a, "b": self.geo.b,
                "sets": self.geo.sets, "row_tiles": len(self.row_slices),
                "col_tiles": len(self.col_index), "tiles": self.tile_count,
                "plan_mismatches": list(self.plan_mismatches)}


def conv_weight_shape(layer: ConvLayer) -> tuple[int, int, int, int]:
    return (layer.out_channels, layer.group_in_channels, layer.Kh, layer.Kw)


def build_tiles(layer: ConvLayer, weight: torch.Tensor | np.ndarray, array: ArraySpec,
                method: str = "vwsdk", options: MappingOptions | None = None,
                plan: LayerMapping | None = None) -> LayerTiles:
    """Map ``layer`` with ``method`` (via :func:`~imcflow.mapping.map_layer`) and lay ``weight`` out on
    the plan's tiles.

    ``weight`` has the torch Conv2d shape ``(OC, IC/groups, Kh, Kw)`` (a linear layer's ``(OC, IC)`` is
    accepted too). Integer values are kept exactly (float64 holds integers up to 2**53).

    >>> from imcflow.hardware import ArraySpec
    >>> t = build_tiles(ConvLayer("c", 1, 1, 3, input_size=4), torch.ones(1, 1, 3, 3),
    ...                 ArraySpec(16, 4), "vwsdk")
    >>> t.plan.window.a, t.plan.window.b, t.tile(0, 0, 0).shape    # 2x2 outputs from a 4x4 PW
    (2, 2, (16, 4))
    """
    check_type("layer", layer, ConvLayer)
    check_type("array", array, ArraySpec, hint="build one with parse_array('64x64') or ArraySpec(64, 64)")
    options = options or MappingOptions()
    plan = plan or map_layer(layer, array, method, options)
    w = torch.as_tensor(np.asarray(weight) if not isinstance(weight, torch.Tensor) else weight)
    if w.dim() == 2:
        w = w[:, :, None, None]
    if tuple(w.shape) != conv_weight_shape(layer):
        raise ConfigError(f"layer {layer.name!r}: weight shape {tuple(w.shape)} does not match the layer; "
                          f"expected {conv_weight_shape(layer)} (OC, IC/groups, Kh, Kw)")
    problem = LayerProblem.from_layer(layer, options.geometry)
    a, b = plan.window.a, plan.window.b
    gp = plan.groups_per_tile
    geo = TileGeometry(problem, a, b,
                       axis_positions(problem.kh, a, problem.stride_h, problem.dilation_h),
                       axis_positions(problem.kw, b, problem.stride_w, problem.dilation_w),
                       gp, ceil_div(problem.groups, gp))
    if (len(geo.pos_h), len(geo.pos_w)) != (plan.window.pw_h, plan.window.pw_w):
        raise ConfigError(f"layer {layer.name!r}: plan PW {plan.window.pw_h}x{plan.window.pw_w} does "
                          f"not match the geometry's {len(geo.pos_h)}x{len(geo.pos_w)}")
    rows, cols = plan.layout.cut(geo, plan, array)
    mats = _set_matrices(w.to(torch.float64), geo)
    return LayerTiles(layer, plan, array, options.geometry, geo, tuple(rows), tuple(cols), mats,
                      _mismatches(geo, plan, array, rows, cols), w.to(torch.float64))


def _set_matrices(w: torch.Tensor, geo: TileGeometry) -> torch.Tensor:
    """``(sets, K, N)`` set matrices; groups of one set block-diagonal, missing groups all zero."""
    pr = geo.problem
    ab, p, gp, s = geo.a * geo.b, geo.pixels, geo.groups_per_set, geo.sets
    th = tap_pixel_index(pr.kh, geo.a, pr.stride_h, pr.dilation_h)  # (a, kh)
    tw = tap_pixel_index(pr.kw, geo.b, pr.stride_w, pr.dilation_w)  # (b, kw)
    pw_w = len(geo.pos_w)
    # pix[off, t]: PW pixel read by tap t = (i, j) of output offset off = (wy, wx).
    pix = (th[:, None, :, None] * pw_w + tw[None, :, None, :]).reshape(ab, pr.kh * pr.kw)
    pix_t = torch.as_tensor(pix)
    off_t = torch.arange(ab)[:, None]
    wg = w.reshape(pr.groups, pr.oc, pr.ic, pr.kh * pr.kw)
    if s * gp > pr.groups:  # pad the last set with all-zero groups
        wg = torch.cat([wg, wg.new_zeros(s * gp - pr.groups, *wg.shape[1:])])
    wg = wg.reshape(s, gp, pr.oc, pr.ic, pr.kh * pr.kw)
    full = torch.zeros(s, gp, pr.ic, p, gp, ab, pr.oc, dtype=torch.float64)
    for gl in range(gp):
        view = full[:, gl, :, :, gl]  # (s, IC, P, ab, OC)
        val = wg[:, gl].permute(0, 2, 3, 1)  # (s, IC, T, OC)
        view[:, :, pix_t, off_t] = val[:, :, None].expand(s, pr.ic, ab, pr.kh * pr.kw, pr.oc)
    return full.reshape(s, geo.set_rows, geo.set_cols)


def _mismatches(geo: TileGeometry, plan: LayerMapping, array: ArraySpec, rows, cols) -> tuple[str, ...]:
    out = []
    if len(rows) != plan.row_tiles or len(cols) != plan.col_tiles:
        out.append(f"built {len(rows)}x{len(cols)} tiles per set, plan has "
                   f"{plan.row_tiles}x{plan.col_tiles}")
    if geo.sets * plan.groups_per_tile < geo.problem.groups:
        out.append(f"{geo.sets} tile sets x {plan.groups_per_tile} groups do not cover "
                   f"{geo.problem.groups} groups")
    tall = max(r1 - r0 for r0, r1 in rows)
    wide = max(len(c) for c in cols)
    if tall > array.rows or wide > array.usable_cols:
        out.append(f"largest tile {tall}x{wide} weights exceeds the array's {array.rows}x"
                   f"{array.usable_cols} (R x C')")
    return tuple(out)
