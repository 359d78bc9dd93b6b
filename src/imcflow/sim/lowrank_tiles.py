"""Crossbar tiles of a low-rank layer and their execution: R's tiles from the simulator's tile builder
(the R plan inside the :class:`~imcflow.mapping.lowrank.LowRankMapping`), L's tiles built here as
I_P (x) L blocks from the L plan (:class:`~imcflow.mapping.lowrank.BlockDiagonalPlan`).

L tile ``(i, j)`` is ``kron(I_P, M[rows_i, cols_j])`` where M (g*k x OC) is L's matrix
(``M[c, o] = l_weight[o, c - group offset]``; zero off the blocks for ``split="output"``), ``rows_i``
the i-th of ``row_tiles`` slices of ``block_rows`` rows and ``cols_j`` likewise: row ``p*|rows_i| + c``
of a tile takes R's output channel ``rows_i[c]`` at pixel slot p of the activation, column
``p*|cols_j| + o`` yields output channel ``cols_j[o]`` at that pixel. Per R window the a*b output
pixels (row-major inside the window; pixels beyond the map are zeros) are fed P at a time, so one
window costs ``ceil(a*b / P) * row_tiles * col_tiles`` activations, as the plan counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import LowRankLayer
from imcflow.mapping import MappingOptions, get_strategy
from imcflow.mapping.geometry import ceil_div
from imcflow.mapping.lowrank import LowRankMapping, map_lowrank
from imcflow.sim.executor import CrossbarLayer, SimCounters
from imcflow.sim.tiles import LayerTiles, build_tiles


def l_matrix(layer: LowRankLayer, l_weight: np.ndarray) -> np.ndarray:
    """L's (g*k, OC) matrix from its conv weight (OC, g*k or k, 1, 1)."""
    lw = np.asarray(l_weight, dtype=np.float64).reshape(layer.out_channels, -1)
    lg = layer.l_layer.groups
    kin, ocg = layer.inner_channels // lg, layer.out_channels // lg
    m = np.zeros((layer.inner_channels, layer.out_channels))
    for i in range(lg):
        m[i * kin:(i + 1) * kin, i * ocg:(i + 1) * ocg] = lw[i * ocg:(i + 1) * ocg].T
    return m


@dataclass(frozen=True)
class LowRankTiles:
    """R's tiles and L's block-diagonal tiles of one low-rank layer under one plan."""

    layer: LowRankLayer
    plan: LowRankMapping
    r_tiles: LayerTiles
    l_row_slices: tuple[tuple[int, int], ...]
    l_col_slices: tuple[tuple[int, int], ...]
    l_tiles: tuple[tuple[np.ndarray, ...], ...] = field(repr=False)  # [i][j]: (P*rows_i, P*cols_j)

    @property
    def l_tile_count(self) -> int:
        return len(self.l_row_slices) * len(self.l_col_slices)


def _slices(n: int, parts: int, size: int) -> tuple[tuple[int, int], ...]:
    return tuple((i * size, min(n, (i + 1) * size)) for i in range(parts))


def build_lowrank_tiles(layer: LowRankLayer, r_weight: np.ndarray | torch.Tensor,
                        l_weight: np.ndarray | torch.Tensor, array: ArraySpec, method: str = "sdk",
                        options: MappingOptions | None = None) -> LowRankTiles:
    """Map ``layer`` with ``method`` and lay out both factors' weights on the plan's tiles."""
    options = options or MappingOptions()
    plan = map_lowrank(layer, get_strategy(method), array, options)
    r_tiles = build_tiles(layer.r_layer, r_weight, array, plan.method, options, plan=plan.r_plan)
    lp = plan.l_plan
    m = l_matrix(layer, np.asarray(l_weight))
    rows = _slices(m.shape[0], lp.row_tiles, lp.block_rows)
    cols = _slices(m.shape[1], lp.col_tiles, lp.block_cols)
    eye = np.eye(lp.pixels_per_activation)
    tiles = tuple(tuple(np.kron(eye, m[r0:r1, c0:c1]) for c0, c1 in cols) for r0, r1 in rows)
    for row in tiles:
        for t in row:
            if t.shape[0] > array.rows or t.shape[1] > array.usable_cols:
                raise ConfigError(f"layer {layer.name!r}: L tile {t.shape} exceeds the array "
                                  f"{array.rows}x{array.usable_cols}")
    return LowRankTiles(layer, plan, r_tiles, rows, cols, tiles)


@dataclass(frozen=True)
class LowRankSimResult:
    """Output of the layer and the activations each factor's tiles performed."""

    output: torch.Tensor
    r_counters: SimCounters
    l_activations: int

    @property
    def activations(self) -> int:
        return self.r_counters.activations + self.l_activations

    def to_dict(self) -> dict[str, object]:
        return {"output_shape": list(self.output.shape), "r_activations": self.r_counters.activations,
                "l_activations": self.l_activations, "activations": self.activations}


def run_lowrank(tiles: LowRankTiles, x: torch.Tensor) -> LowRankSimResult:
    """Run R's crossbars (the simulator's executor), then L's I_P (x) L tiles window by window."""
    r = CrossbarLayer(tiles.r_tiles).run(x)
    y = r.output  # (N, g*k, Ho, Wo) float64
    plan, lp = tiles.plan, tiles.plan.l_plan
    a, b = plan.window.a, plan.window.b
    wh, ww = plan.r_plan.windows_h, plan.r_plan.windows_w
    n, kin, ho, wo = y.shape
    y = F.pad(y, (0, ww * b - wo, 0, wh * a - ho))  # pixels of edge windows beyond the map: zeros
    # (N, wh, ww, a*b, K_L): the window's pixels row-major, then padded to whole activations of P.
    pix = y.reshape(n, kin, wh, a, ww, b).permute(0, 2, 4, 3, 5, 1).reshape(n, wh, ww, a * b, kin)
    p = lp.pixels_per_activation
    chunks = ceil_div(a * b, p)
    pix = F.pad(pix, (0, 0, 0, chunks * p - a * b)).reshape(n, wh, ww, chunks, p, kin)
    out_cols = []
    activations = 0
    for j, (c0, c1) in enumerate(tiles.l_col_slices):
        acc = torch.zeros(n, wh, ww, chunks, p * (c1 - c0), dtype=torch.float64)
        for i, (r0, r1) in enumerate(tiles.l_row_slices):
            v = pix[..., r0:r1].reshape(n, wh, ww, chunks, p * (r1 - r0))
            acc += v @ torch.from_numpy(tiles.l_tiles[i][j])
            activations += n * wh * ww * chunks  # one activation per (image, window, chunk) of tile
        out_cols.append(acc.reshape(n, wh, ww, chunks * p, c1 - c0))
    z = torch.cat(out_cols, dim=-1)[:, :, :, :a * b]  # (N, wh, ww, a*b, OC)
    oc = z.shape[-1]
    z = z.reshape(n, wh, ww, a, b, oc).permute(0, 5, 1, 3, 2, 4).reshape(n, oc, wh * a, ww * b)
    return LowRankSimResult(z[:, :, :ho, :wo].contiguous(), r.counters, activations)
