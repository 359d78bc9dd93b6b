"""Low-rank composite layers in the mapping engine: hand-computed cycles, plan invariants, network
mapping and records. Torch-free."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import COMPOSITE_LAYERS, AnyLayer, ConvLayer, Network
from imcflow.mapping import MappingOptions, get_strategy, map_layer, map_network
from imcflow.mapping.composite import composite_mapper
from imcflow.mapping.lowrank import BlockDiagonalPlan, LowRankLayer, LowRankMapping, map_lowrank, useful_macs
from imcflow.report.mapping_report import FORMATTERS

REAL = MappingOptions()


def test_is_a_composite_layer_and_factors_have_the_right_shapes():
    lr = LowRankLayer("c", 32, 64, 3, rank=4, rank_groups=4, input_size=16, padding=1, stride=2)
    # A record of the layer model beside ConvLayer, mapped by the function registered for its type.
    assert isinstance(lr, AnyLayer) and type(lr) in COMPOSITE_LAYERS and composite_mapper(lr) is not None
    r, l = lr.r_layer, lr.l_layer
    assert (r.in_channels, r.out_channels, r.groups, r.stride, r.padding) == (32, 16, 4, (2, 2), (1, 1))
    assert (l.in_channels, l.out_channels, l.groups, l.kernel_size, l.input_size) == (16, 64, 1, (1, 1),
                                                                                       (8, 8))
    assert lr.weight_count == 16 * 8 * 9 + 64 * 16
    out = LowRankLayer("c", 32, 64, 3, rank=4, rank_groups=4, split="output", input_size=16)
    assert (out.r_layer.groups, out.r_layer.out_channels, out.l_layer.groups) == (1, 16, 4)
    assert out.weight_count == 16 * 32 * 9 + 64 * 4


def test_im2col_cycles_by_hand():
    # R: 3x3 conv 16 -> 8 on 10x10 (pad 1): 100 pixels x ceil(144/64)=3 row tiles x 1 col tile = 300.
    # L: 8 -> 32, N = 1 pixel per im2col window: 100 activations. Sum 400; pipelined max 300.
    lr = LowRankLayer("c", 16, 32, 3, rank=8, input_size=10, padding=1)
    m = map_lowrank(lr, get_strategy("im2col"), ArraySpec(64, 64), REAL)
    assert isinstance(m, LowRankMapping)
    assert (m.factor_r.cycles, m.factor_l.cycles, m.cycles) == (300, 100, 400)
    assert m.arrays == 3 + 1
    piped = LowRankLayer("c", 16, 32, 3, rank=8, input_size=10, padding=1, combine="pipelined")
    assert map_lowrank(piped, get_strategy("im2col"), ArraySpec(64, 64), REAL).cycles == 300


def test_sdk_cycles_by_hand_one_l_activation_per_window():
    # R: 3x3 conv 8 -> 4 on 8x8 (pad 1), array 128x128. im2col budget: ceil(72/128)=1 x 1 tile.
    # SDK window n: PW (n+2)^2 * 8 <= 128 -> n = 2 (16*8 = 128 rows), n*n*4 = 16 cols. 4x4 windows = 16.
    # L: 4 -> 16, N = 4 pixels: 4*4 = 16 rows <= 128, 4*16 = 64 cols <= 128 -> 1 activation per window.
    lr = LowRankLayer("c", 8, 16, 3, rank=4, input_size=8, padding=1)
    m = map_lowrank(lr, get_strategy("sdk"), ArraySpec(128, 128), REAL)
    assert (m.window.a, m.window.b) == (2, 2)
    assert m.factor_r.cycles == 16
    assert (m.factor_l.pixels_per_activation, m.factor_l.activations_per_window) == (4, 1)
    assert m.cycles == 16 + 16 and m.arrays == 2


def test_l_tiled_when_the_window_does_not_fit():
    # L: 40 -> 100 on a 64x64 array: rt = 1, ct = ceil(100/64) = 2 blocks of 40 x 50;
    # P = min(N, 64 // 40, 64 // 50) = 1, so each R window needs N * 1 * 2 activations.
    plan = BlockDiagonalPlan.build(windows=10, pixels_per_window=6, rows_per_pixel=40,
                                   cols_per_pixel=100, weights=4000, array=ArraySpec(64, 64))
    assert (plan.row_tiles, plan.col_tiles, plan.block_rows, plan.block_cols) == (1, 2, 40, 50)
    assert plan.pixels_per_activation == 1
    assert plan.activations_per_window == 12 and plan.cycles == 120 and plan.arrays == 2
    # Partly fits: 10 -> 20 on 64x64: P = min(6, 6, 3) = 3, 2 activations per window.
    plan = BlockDiagonalPlan.build(windows=10, pixels_per_window=6, rows_per_pixel=10,
                                   cols_per_pixel=20, weights=200, array=ArraySpec(64, 64))
    assert plan.pixels_per_activation == 3 and plan.cycles == 20


def test_output_split_block_diagonal_l_tile_weights():
    lr = LowRankLayer("c", 8, 8, 3, rank=2, rank_groups=4, split="output", input_size=6, padding=1)
    mask = lr.l_matrix_mask()
    assert mask.shape == (8, 8) and mask.sum() == lr.l_layer.weight_count == 16


@pytest.mark.parametrize("kwargs, msg", [
    (dict(rank=0), "rank must be"),
    (dict(rank=4, rank_groups=3), "rank_groups=3 must divide"),
    (dict(rank=200), "exceeds the full rank"),
    (dict(rank=4, split="diagonal"), "split must be"),
    (dict(rank=4, combine="overlap"), "combine must be"),
])
def test_validation_names_field_and_value(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        LowRankLayer("c", 16, 16, 3, input_size=8, **kwargs)


def test_grouped_conv_is_not_decomposed():
    with pytest.raises(ConfigError, match="groups=2"):
        LowRankLayer.from_conv(ConvLayer("g", 16, 16, 3, input_size=8, groups=2), rank=2)


def test_to_dict_has_conv_keys_and_round_trips():
    conv = ConvLayer("c", 16, 32, 3, input_size=(12, 10), stride=2, padding=1, bias=True)
    lr = LowRankLayer.from_conv(conv, rank=4, rank_groups=2, split="output", combine="pipelined")
    d = lr.to_dict()
    assert set(conv.to_dict()) <= set(d)
    assert d["kind"] == "lowrank" and d["rank"] == 4 and d["rank_groups"] == 2
    assert {k: d[k] for k in conv.to_dict() if k != "kind"} == {
        k: v for k, v in conv.to_dict().items() if k != "kind"}
    assert LowRankLayer.from_dict(json.loads(json.dumps(d))) == lr


def test_map_network_with_lowrank_entries_and_reports():
    c1 = ConvLayer("c1", 3, 16, 3, input_size=16, padding=1)
    c2 = ConvLayer("c2", 16, 32, 3, input_size=16, padding=1, stride=2)
    fc = ConvLayer("fc", 32, 10, 1, kind="linear")
    lr = LowRankLayer.from_conv(c2, rank=4, rank_groups=2)
    net = Network("n", (c1, lr, fc))
    array = ArraySpec(128, 128)
    result = map_network(net, array)
    for method in result.methods:
        assert result.layers[1][method] == map_lowrank(lr, get_strategy(method), array, REAL)
        assert result.totals(method).cycles == sum(r[method].cycles for r in result.layers)
    # c1: 16*16 pixels * 27 * 16; the factors: R 8*8 * (2 groups * 9*8 * 4) + L 8*8 * 8*32; fc 320.
    assert useful_macs(lr, "real") == 64 * 576 + 64 * 256
    assert result.totals("sdk").macs == 16 * 16 * 27 * 16 + 64 * 576 + 64 * 256 + 320
    for fmt in ("table", "json", "csv"):
        text = FORMATTERS[fmt](result)
        assert "c2" in text
    assert json.loads(FORMATTERS["json"](result))["layers"][1]["kind"] == "lowrank"


lowrank_layers = st.builds(
    lambda ic_mult, oc, k, g, split, hw, stride, pad: LowRankLayer(
        "x", ic_mult * g, oc * (g if split == "output" else 1), k, rank=1, rank_groups=g,
        split=split, input_size=hw, stride=stride, padding=min(pad, k // 2)),
    st.integers(1, 8), st.integers(1, 24), st.sampled_from([1, 3]), st.integers(1, 4),
    st.sampled_from(["input", "output"]), st.integers(3, 14), st.integers(1, 2), st.integers(0, 1))
arrays = st.builds(ArraySpec, st.sampled_from([16, 32, 64, 128]), st.sampled_from([16, 32, 64, 128]))


@settings(max_examples=60)
@given(lowrank_layers, st.integers(1, 6), arrays, st.sampled_from(["im2col", "sdk", "vwsdk", "flex"]),
       st.sampled_from(["real", "paper"]))
def test_plan_invariants(layer, rank, array, method, geometry):
    m_blk, n_blk = layer.block_shape
    layer = LowRankLayer.from_conv(layer.conv_layer, rank=min(rank, m_blk, n_blk),
                                   rank_groups=layer.rank_groups, split=layer.split)
    opts = MappingOptions(geometry=geometry)
    m = map_lowrank(layer, get_strategy(method), array, opts)
    p = m.factor_l
    # The L tile fits the array and carries whole copies of the block.
    assert p.pixels_per_activation * p.block_rows <= array.rows
    assert p.pixels_per_activation * p.block_cols <= array.usable_cols
    n = m.window.a * m.window.b
    if n * layer.inner_channels <= array.rows and n * layer.out_channels <= array.usable_cols:
        assert p.activations_per_window == 1
    assert m.cycles == m.factor_r.cycles + p.cycles
    assert m.factor_r == map_layer(layer.r_layer, array, method, opts)
    assert m.cycles >= m.lower_bound
    assert 0 < m.avg_utilization <= 1 and 0 < m.tile_utilization <= 1
    piped = map_lowrank(LowRankLayer.from_conv(layer.conv_layer, rank=layer.rank,
                                               rank_groups=layer.rank_groups, split=layer.split,
                                               combine="pipelined"), get_strategy(method), array, opts)
    assert piped.cycles == max(m.factor_r.cycles, p.cycles) and piped.cycles >= piped.lower_bound


def test_lowrank_mapping_needs_no_torch():
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"
            "from imcflow.mapping.lowrank import LowRankLayer\n"
            "from imcflow.mapping import map_network\n"
            "from imcflow.hardware.array import ArraySpec\n"
            "r = map_network([LowRankLayer('c', 16, 16, 3, rank=4, input_size=8)], ArraySpec(64, 64))\n"
            "print(r.totals('im2col').cycles)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # R: 36 pixels * ceil(144/64)=3 = 108; L: 36 * 1 = 36.
    assert out.stdout.strip() == "144"
