"""Exact event counts of one mapped layer, read off its mapping plan (preset-independent).

The plan (:class:`~imcflow.mapping.base.LayerMapping`) fixes the window, the row and column tiles and
their number, and carries its tile layout (``plan.layout``, :mod:`imcflow.mapping.layout`), which says
how many rows and columns each tile occupies: ``flat`` for im2col, SDK, flex and VW-SDK's im2col
fallback, ``channel`` for VW-SDK. This module never looks a strategy up by name.

Definitions (all exact integers, summed over every activation of the layer):

* active rows / columns of a tile: the word lines and *usable* (weight) columns its slice of the tile
  matrix occupies. Every activation of the tile drives and senses all of them, including columns of
  outputs that fall outside the output map at the border (their results are discarded afterwards).
* input steps ``= ceil(input_bits / dac_bits)``: bit-serial input cycles per activation.
* physical columns = usable columns x weight slices (a weight spans ``slices`` cells).
* DAC drives = active rows x steps; column samples = physical columns x steps;
  ADC conversions = physical columns x steps (or usable columns x steps when the hardware merges a
  weight's slices in analog, :meth:`LayerCounts.conversions`); cell reads = rows x physical columns x
  steps; shift-and-add ops = conversions (every digitised sample is shifted and added once).
* partial-sum accumulations: each column of row tile i > 0 adds its result to the sum of the earlier
  row tiles: ``windows x sum_j cols_j x (row_tiles - 1)`` per tile set.
* buffer traffic: every activation reads its active rows' inputs (``rows x input_bits``, so a window of
  a x b outputs reads its PW once - the input reuse of SDK/VW-SDK/flex) and writes its active columns'
  results (``cols x output_bits``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from imcflow.errors import ImcflowError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.mapping.base import LayerMapping
from imcflow.mapping.geometry import LayerProblem
from imcflow.mapping.layout import TileShape
from imcflow.validate import check_bits


def tile_shapes(problem: LayerProblem, mapping: LayerMapping, array: ArraySpec) -> list[TileShape]:
    """The occupied rows and columns of every tile of ``mapping`` (merged by shape).

    >>> from imcflow.mapping import map_layer, MappingOptions
    >>> from imcflow.layers import ConvLayer
    >>> layer = ConvLayer("c", 3, 8, 3, input_size=6)
    >>> m = map_layer(layer, ArraySpec(16, 8), "im2col")
    >>> [(t.rows, t.cols, t.count) for t in tile_shapes(LayerProblem.from_layer(layer), m, ArraySpec(16, 8))]
    [(16, 8, 1), (11, 8, 1)]
    """
    merged: Counter = Counter()
    for t in mapping.layout.tile_shapes(problem, mapping, array):
        merged[(t.rows, t.cols, t.row_index)] += t.count
    shapes = [TileShape(r, c, n, i) for (r, c, i), n in merged.items()]
    n_tiles = sum(t.count for t in shapes)
    if n_tiles != mapping.arrays:
        raise ImcflowError(f"mapping plan inconsistent: layer {mapping.layer!r} ({mapping.method}) has "
                           f"{mapping.arrays} tiles but its layout gives {n_tiles}")
    return shapes


@dataclass(frozen=True)
class LayerCounts:
    """Every event one mapped layer causes, independent of the hardware preset.

    ``activations`` equals the plan's ``cycles``; each of the ``arrays`` tiles is activated
    ``windows`` times. Sums named ``*_activations`` are over all activations of the layer.
    """

    layer: str
    method: str
    input_bits: int
    output_bits: int
    input_steps: int
    slices: int
    windows: int
    activations: int
    arrays: int
    tiles: tuple[TileShape, ...]
    row_activations: int  # sum of active rows
    col_activations: int  # sum of active usable columns
    cell_activations: int  # sum of rows x usable columns
    accumulations: int
    macs: int
    outputs: int

    # --- derived events (one formula each, see the module docstring) ---
    @property
    def physical_col_activations(self) -> int:
        return self.col_activations * self.slices

    @property
    def dac_drives(self) -> int:
        return self.row_activations * self.input_steps

    @property
    def column_samples(self) -> int:
        return self.physical_col_activations * self.input_steps

    @property
    def adc_conversions(self) -> int:
        """Conversions when every physical column is digitised (columns x steps x slices)."""
        return self.conversions(slices_merged=False)

    def conversions(self, slices_merged: bool) -> int:
        cols = self.col_activations if slices_merged else self.physical_col_activations
        return cols * self.input_steps

    @property
    def cell_reads(self) -> int:
        return self.cell_activations * self.slices * self.input_steps

    @property
    def shift_add_ops(self) -> int:
        return self.adc_conversions

    @property
    def input_read_bits(self) -> int:
        return self.row_activations * self.input_bits

    @property
    def output_write_bits(self) -> int:
        return self.col_activations * self.output_bits

    @property
    def max_tile_cols(self) -> int:
        return max(t.cols for t in self.tiles)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tiles"] = [asdict(t) for t in self.tiles]
        for name in ("physical_col_activations", "dac_drives", "column_samples", "adc_conversions",
                     "cell_reads", "shift_add_ops", "input_read_bits", "output_write_bits"):
            d[name] = getattr(self, name)
        return d


def input_steps(input_bits: int, dac_bits: int) -> int:
    """Bit-serial input cycles per activation: ``ceil(input_bits / dac_bits)``.

    >>> input_steps(16, 1), input_steps(8, 3)
    (16, 3)
    """
    check_bits("input_bits", input_bits)
    check_bits("dac bits", dac_bits, "dac_bits")
    return math.ceil(input_bits / dac_bits)


def count_layer(layer: ConvLayer | LayerProblem, mapping: LayerMapping, array: ArraySpec, *,
                input_bits: int = 8, dac_bits: int = 1, output_bits: int | None = None,
                geometry: str = "real") -> LayerCounts:
    """Count the events of ``mapping`` (which must have been made for ``layer`` on ``array``).

    >>> from imcflow.mapping import map_layer
    >>> layer = ConvLayer("c", 3, 8, 3, input_size=6)
    >>> c = count_layer(layer, map_layer(layer, ArraySpec(16, 8), "im2col"), ArraySpec(16, 8),
    ...                 input_bits=4, dac_bits=1)
    >>> c.activations, c.row_activations, c.adc_conversions   # 16 pixels x 2 row tiles
    (32, 432, 1024)
    """
    problem = layer if isinstance(layer, LayerProblem) else LayerProblem.from_layer(layer, geometry)
    shapes = tile_shapes(problem, mapping, array)
    if mapping.windows * sum(t.count for t in shapes) != mapping.cycles:
        raise ImcflowError(f"mapping plan inconsistent: layer {mapping.layer!r}: {mapping.windows} "
                           f"windows x {mapping.arrays} tiles != {mapping.cycles} cycles")
    return counts_from_tiles(
        mapping.layer, mapping.method, shapes, mapping.windows, mapping.arrays, array,
        macs=problem.macs, outputs=problem.out_h * problem.out_w * problem.oc * problem.groups,
        input_bits=input_bits, dac_bits=dac_bits, output_bits=output_bits)


def counts_from_tiles(layer: str, method: str, shapes: list[TileShape], windows: int, arrays: int,
                      array: ArraySpec, *, macs: int, outputs: int, input_bits: int = 8,
                      dac_bits: int = 1, output_bits: int | None = None) -> LayerCounts:
    """The counts of ``windows`` activations of every tile in ``shapes`` (``count`` = activations of
    that tile shape per window). One formula for every layout, composite factors included."""
    check_bits("input_bits", input_bits)
    out_bits = input_bits if output_bits is None else check_bits("output_bits", output_bits)
    steps = input_steps(input_bits, dac_bits)
    shapes = sorted(shapes, key=lambda t: (t.row_index, -t.rows, -t.cols))
    rows = windows * sum(t.rows * t.count for t in shapes)
    cols = windows * sum(t.cols * t.count for t in shapes)
    cells = windows * sum(t.rows * t.cols * t.count for t in shapes)
    accum = windows * sum(t.cols * t.count for t in shapes if t.row_index > 0)
    return LayerCounts(
        layer=layer, method=method, input_bits=input_bits, output_bits=out_bits,
        input_steps=steps, slices=array.slices, windows=windows,
        activations=windows * sum(t.count for t in shapes), arrays=arrays, tiles=tuple(shapes),
        row_activations=rows, col_activations=cols, cell_activations=cells, accumulations=accum,
        macs=macs, outputs=outputs)


def merge_counts(layer: str, parts: list[LayerCounts]) -> LayerCounts:
    """One record of several factors' counts (a composite layer): event sums, every factor's tiles;
    ``windows`` is the first factor's (its activations drive the others)."""
    first = parts[0]
    return LayerCounts(
        layer=layer, method=first.method, input_bits=first.input_bits, output_bits=first.output_bits,
        input_steps=first.input_steps, slices=first.slices, windows=first.windows,
        activations=sum(p.activations for p in parts), arrays=sum(p.arrays for p in parts),
        tiles=tuple(t for p in parts for t in p.tiles),
        row_activations=sum(p.row_activations for p in parts),
        col_activations=sum(p.col_activations for p in parts),
        cell_activations=sum(p.cell_activations for p in parts),
        accumulations=sum(p.accumulations for p in parts), macs=sum(p.macs for p in parts),
        outputs=parts[-1].outputs)
