"""Counts of composite layers (factorised convolutions): every factor counted from its own plan.

A composite layer's plan carries one plan per factor. Its events are the events of each factor, so it
is costed as the factors' sum: energy and preloaded area add up; latency adds up when the factors run
one after the other (``combine="sum"``) and is the slower factor's when they are pipelined on their own
arrays (``combine="pipelined"``). Each composite type registers its counter with
:func:`register_composite`.

Low-rank layers (:class:`~imcflow.layers.LowRankLayer`, mapped by :mod:`imcflow.mapping.lowrank`): R
is counted like any conv from ``factor_r``; L, held as I_P (x) block on ``rt`` x ``ct`` arrays, runs
``ceil(N/P)`` passes per R window. A pass over p pixels drives p x (block rows) word lines and senses
p x (block columns) columns of every block array, the last pass of a window holding the N mod P
pixels left (when P does not divide N).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imcflow.cost.counts import LayerCounts, count_layer, counts_from_tiles
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import LowRankLayer
from imcflow.mapping.base import LayerMapping
from imcflow.mapping.layout import TileShape, split_axis
from imcflow.mapping.lowrank import BlockDiagonalPlan, LowRankMapping, factor_problems
from imcflow.registry import Registry

# composite layer type -> counter(layer, plan, array, **bits) -> counts of each factor
Counter = Callable[..., list[LayerCounts]]
COUNTERS: Registry[Counter] = Registry("composite layer type")


def register_composite(layer_type: type, counter: Counter, *, replace: bool = False) -> None:
    """Say how the factors of composite layers of ``layer_type`` are counted (keyed by class name)."""
    COUNTERS.register(layer_type.__name__, counter, replace=replace)


def count_composite(layer: Any, plan: LayerMapping, array: ArraySpec, *, input_bits: int,
                    dac_bits: int, geometry: str = "real") -> list[LayerCounts]:
    """The counts of every factor of a composite layer, in execution order."""
    kind = type(layer).__name__
    if kind not in COUNTERS:
        raise ConfigError(f"layer {layer.name!r}: no cost counter for composite layers of type {kind}; "
                          f"known: {', '.join(COUNTERS.names())}")
    counter = COUNTERS.get(kind)
    return counter(layer, plan, array, input_bits=input_bits, dac_bits=dac_bits, geometry=geometry)


def count_block_diagonal(name: str, method: str, plan: BlockDiagonalPlan, array: ArraySpec, *,
                         macs: int, outputs: int, input_bits: int, dac_bits: int) -> LayerCounts:
    """Counts of L mapped as I_P (x) block over the windows of R.

    >>> p = BlockDiagonalPlan.build(windows=10, pixels_per_window=6, rows_per_pixel=8,
    ...                             cols_per_pixel=4, weights=32, array=ArraySpec(32, 32))
    >>> c = count_block_diagonal("l", "sdk", p, ArraySpec(32, 32), macs=0, outputs=0, input_bits=1,
    ...                          dac_bits=1)
    >>> p.pixels_per_activation, c.activations, c.row_activations   # passes of 4 and 2 pixels
    (4, 20, 480)
    """
    rows = split_axis(plan.rows_per_pixel, plan.block_rows, plan.row_tiles, "rows")
    cols = split_axis(plan.cols_per_pixel, plan.block_cols, plan.col_tiles, "columns")
    full, last = divmod(plan.pixels_per_window, plan.pixels_per_activation)
    passes = [(plan.pixels_per_activation, full), (last, 1 if last else 0)]
    shapes = [TileShape(p * r, p * c, n, i) for p, n in passes if n
              for i, r in enumerate(rows) for c in cols]
    return counts_from_tiles(name, method, shapes, plan.windows, plan.arrays, array, macs=macs,
                             outputs=outputs, input_bits=input_bits, dac_bits=dac_bits)


def count_lowrank(layer: LowRankLayer, plan: LowRankMapping, array: ArraySpec, *, input_bits: int,
                  dac_bits: int, geometry: str = "real") -> list[LayerCounts]:
    if plan.factor_r is None or plan.factor_l is None:
        raise ConfigError(f"layer {layer.name!r}: its low-rank plan has no factor plans to count")
    r = count_layer(layer.r_layer, plan.factor_r, array, input_bits=input_bits, dac_bits=dac_bits,
                    geometry=geometry)
    pr, pl = factor_problems(layer, geometry)
    l_counts = count_block_diagonal(
        f"{layer.name}.L", plan.method, plan.factor_l, array, macs=pl.macs,
        outputs=pl.out_h * pl.out_w * pl.oc * pl.groups, input_bits=input_bits, dac_bits=dac_bits)
    return [r, l_counts]


register_composite(LowRankLayer, count_lowrank)
