"""Event counts from mapping plans: hand-computed small layers per method, and invariants."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.cost import count_layer, tile_shapes
from imcflow.errors import ImcflowError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.mapping import LayerProblem, MappingOptions, map_layer
from imcflow.mapping.base import build_mapping
from imcflow.mapping.layout import CHANNEL, FLAT, split_axis


def shapes(c):
    return [(t.rows, t.cols, t.count, t.row_index) for t in c.tiles]


def test_im2col_hand_counts():
    # 3->8 channels, 3x3, 6x6 input: 4x4 = 16 outputs; K = 27 rows cut at R = 16 -> 16 + 11; OC = 8 = C'.
    layer, array = ConvLayer("c", 3, 8, 3, input_size=6), ArraySpec(16, 8)
    c = count_layer(layer, map_layer(layer, array, "im2col"), array, input_bits=4, dac_bits=1)
    assert shapes(c) == [(16, 8, 1, 0), (11, 8, 1, 1)]
    assert c.activations == 32 and c.windows == 16 and c.input_steps == 4
    assert c.row_activations == 16 * 27 == 432
    assert c.col_activations == 16 * 2 * 8 == 256
    assert c.cell_activations == 16 * 27 * 8 == c.macs  # im2col occupies exactly its weights
    assert c.accumulations == 16 * 8  # second row tile adds into the first
    assert c.dac_drives == 432 * 4 and c.adc_conversions == 256 * 4 == c.shift_add_ops
    assert c.cell_reads == 3456 * 4
    assert c.input_read_bits == 432 * 4 and c.output_write_bits == 256 * 4
    assert c.outputs == 16 * 8


def test_sdk_hand_counts():
    # 2->2, 3x3, 6x6 (4x4 out), 16x8 array: im2col budget AR0 = ceil(18/16) = 2, AC0 = 1. n = 2 fits
    # (PW 4x4x2 = 32 <= 32 rows, 2*2*2 = 8 <= 8 cols), n = 3 does not: 4 windows x 2 tiles.
    layer, array = ConvLayer("s", 2, 2, 3, input_size=6), ArraySpec(16, 8)
    plan = map_layer(layer, array, "sdk")
    assert (plan.window.a, plan.row_tiles, plan.col_tiles, plan.cycles) == (2, 2, 1, 8)
    c = count_layer(layer, plan, array, input_bits=1)
    assert shapes(c) == [(16, 8, 1, 0), (16, 8, 1, 1)]
    assert c.row_activations == 4 * 32
    assert c.col_activations == 4 * 2 * 8
    assert c.cell_activations == 4 * 2 * 16 * 8
    assert c.accumulations == 4 * 8
    # The window reads its 16-pixel PW once for 4 outputs: 32 rows vs im2col's 4 x 18 = 72 per window.
    assert c.input_read_bits == 128 < count_layer(layer, map_layer(layer, array, "im2col"), array,
                                                  input_bits=1).input_read_bits


def test_vwsdk_hand_counts():
    # 5->3, 3x3, 6x6 (4x4 out), 40x12 array. Window a=4, b=1: PW 6x3 = 18 pixels, ICt = 40 // 18 = 2
    # -> row tiles of 2, 2, 1 channels = 36, 36, 18 rows; OCt = 12 // 4 = 3 -> one column tile of
    # 4*3 = 12 columns; 1 x 4 = 4 windows.
    layer, array = ConvLayer("v", 5, 3, 3, input_size=6), ArraySpec(40, 12)
    plan = map_layer(layer, array, "vwsdk")
    assert (plan.window.a, plan.window.b, plan.window.ict, plan.window.oct) == (4, 1, 2, 3)
    c = count_layer(layer, plan, array, input_bits=1)
    assert shapes(c) == [(36, 12, 1, 0), (36, 12, 1, 1), (18, 12, 1, 2)]
    assert c.activations == plan.cycles == 12
    assert c.row_activations == 4 * 90
    assert c.col_activations == 4 * 3 * 12
    assert c.cell_activations == 4 * 12 * 90
    assert c.accumulations == 4 * 2 * 12


def test_vwsdk_fallback_uses_im2col_layout():
    layer, array = ConvLayer("f", 512, 512, 3, input_size=7), ArraySpec(512, 512)
    plan = map_layer(layer, array, "vwsdk", MappingOptions(geometry="paper"))
    assert plan.fallback == "im2col"
    c = count_layer(layer, plan, array, input_bits=1, geometry="paper")
    ref = count_layer(layer, map_layer(layer, array, "im2col", MappingOptions(geometry="paper")),
                      array, input_bits=1, geometry="paper")
    assert (c.row_activations, c.col_activations, c.cell_activations) == \
        (ref.row_activations, ref.col_activations, ref.cell_activations)


def test_flex_hand_counts():
    # 3->4, 3x3, 6x6 (4x4 out), 40x16 array: flex picks a=2, b=1: PW 4x3x3 = 36 rows, 2*1*4 = 8 cols.
    layer, array = ConvLayer("f", 3, 4, 3, input_size=6), ArraySpec(40, 16)
    plan = map_layer(layer, array, "flex")
    assert (plan.window.a, plan.window.b, plan.cycles) == (2, 1, 8)
    c = count_layer(layer, plan, array, input_bits=1)
    assert shapes(c) == [(36, 8, 1, 0)]
    assert (c.row_activations, c.col_activations, c.cell_activations, c.accumulations) == \
        (8 * 36, 8 * 8, 8 * 36 * 8, 0)


def test_flex_group_packing_with_partial_set():
    # Depthwise 5 groups, 3x3 on 4x4 (2x2 out): one window a=b=2 per group = 16 rows x 4 cols; a 40x16
    # tile packs gp = min(40 // 16, 16 // 4, 5) = 2 groups; 3 tile sets, the last with one group.
    layer, array = ConvLayer("d", 5, 5, 3, input_size=4, groups=5), ArraySpec(40, 16)
    plan = map_layer(layer, array, "flex")
    assert (plan.groups_per_tile, plan.arrays, plan.cycles) == (2, 3, 3)
    c = count_layer(layer, plan, array, input_bits=1)
    assert sorted(shapes(c)) == [(16, 4, 1, 0), (32, 8, 2, 0)]
    assert c.row_activations == 2 * 32 + 16 and c.col_activations == 2 * 8 + 4
    assert c.accumulations == 0


def test_slices_multiply_physical_columns():
    layer = ConvLayer("c", 3, 8, 3, input_size=6)
    array = ArraySpec(16, 32, cell_bits=2, weight_bits=8)  # 4 slices, C' = 8
    c = count_layer(layer, map_layer(layer, array, "im2col"), array, input_bits=8, dac_bits=2)
    assert c.input_steps == 4 and c.slices == 4
    assert c.adc_conversions == c.col_activations * 4 * 4
    assert c.conversions(slices_merged=True) == c.col_activations * 4
    assert c.cell_reads == c.cell_activations * 4 * 4


def test_split_axis_and_errors():
    assert split_axis(27, 10, 3, "rows") == [10, 10, 7]
    assert split_axis(10, 4, 2, "cols") == [5, 5]  # an over-filled plan is spread evenly
    with pytest.raises(Exception, match="inconsistent"):
        split_axis(5, 10, 2, "rows")


def test_counts_dispatch_on_the_plans_layout_never_on_the_method_name():
    # A plan from a strategy nobody registered ("mystery") counts by the layout it carries: with the
    # flat layout and im2col's tiles it counts exactly like im2col's own plan.
    layer, array = ConvLayer("c", 3, 8, 3, input_size=6), ArraySpec(16, 8)
    problem = LayerProblem.from_layer(layer)
    plan = build_mapping("mystery", problem, array, layout=FLAT, a=1, b=1, row_tiles=2,
                         col_tiles=1, ict=2, oct=8, tile_weights=128)
    mine, ref = count_layer(layer, plan, array), count_layer(layer, map_layer(layer, array, "im2col"), array)
    assert mine.method == "mystery"
    assert (mine.tiles, mine.row_activations, mine.col_activations, mine.accumulations) == (
        ref.tiles, ref.row_activations, ref.col_activations, ref.accumulations)
    # The same plan claiming the channel layout is cut by whole channels (ICt=2 of IC=3: 18 + 9 rows),
    # which does not fit 16 rows: the layout on the plan decided, not the name.
    chan = dataclasses.replace(plan, layout=CHANNEL)
    with pytest.raises(ImcflowError, match=r"channel-layout tiles \[18, 9\] x \[8\]"):
        tile_shapes(problem, chan, array)


layers = st.builds(
    lambda ic, oc, k, h, s, p, g: ConvLayer("l", ic * g, oc * g, k, input_size=h + k, stride=s,
                                            padding=p, groups=g),
    st.integers(1, 12), st.integers(1, 12), st.integers(1, 3), st.integers(0, 9), st.integers(1, 2),
    st.integers(0, 1), st.sampled_from([1, 1, 2, 3]))
arrays = st.builds(lambda r, c, w: ArraySpec(r, c * w, weight_bits=w),
                   st.integers(9, 48), st.integers(4, 24), st.sampled_from([1, 2]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(layers, arrays, st.sampled_from(["im2col", "sdk", "vwsdk", "flex"]))
def test_counts_agree_with_plan(layer, array, method):
    plan = map_layer(layer, array, method)
    c = count_layer(layer, plan, array, input_bits=3, dac_bits=2)
    assert c.activations == plan.cycles
    assert sum(t.count for t in c.tiles) == plan.arrays
    assert all(0 < t.rows <= array.rows and 0 < t.cols <= array.usable_cols for t in c.tiles)
    assert c.row_activations <= plan.cycles * array.rows
    assert c.col_activations <= plan.cycles * array.usable_cols
    # Every useful MAC occupies one cell in some activation (windows at the border read extra ones).
    assert c.cell_activations >= c.macs
    if method == "im2col":
        assert c.cell_activations == c.macs
    # Each tile column's partial sums are accumulated once per extra row tile.
    assert c.accumulations == plan.windows * sum(t.cols * t.count for t in c.tiles if t.row_index)
