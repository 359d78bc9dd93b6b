"""Costing low-rank (composite) layers: each factor counted from its own plan, then combined."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow import ArraySpec, ConvLayer, MappingOptions, Network, map_network
from imcflow.cost import CostSettings, cost_layer, cost_mapping, count_layer
from imcflow.cost.composite import count_lowrank
from imcflow.hardware.preset import load_preset
from imcflow.mapping import get_strategy
from imcflow.mapping.lowrank import LowRankLayer, map_lowrank

PRESET = load_preset("isaac")


@st.composite
def lowrank_layers(draw):
    ic = draw(st.integers(1, 12)) * 4
    oc = draw(st.integers(1, 12)) * 4
    g = draw(st.sampled_from([1, 2, 4]))
    split = draw(st.sampled_from(["input", "output"]))
    conv = ConvLayer("c", ic, oc, draw(st.integers(1, 3)), input_size=draw(st.integers(4, 16)),
                     padding=draw(st.integers(0, 1)), stride=draw(st.integers(1, 2)))
    m, n = (oc, ic // g * conv.Kh * conv.Kw) if split == "input" else (oc // g, ic * conv.Kh * conv.Kw)
    rank = draw(st.integers(1, min(m, n)))
    return LowRankLayer.from_conv(conv, rank, g, split, draw(st.sampled_from(["sum", "pipelined"])))


@settings(max_examples=60)
@given(lowrank_layers(), st.sampled_from(["im2col", "sdk", "vwsdk", "flex"]),
       st.sampled_from([(32, 32), (64, 128), (128, 64)]))
def test_factor_counts_follow_the_plans(layer, method, shape):
    array = ArraySpec(*shape)
    plan = map_lowrank(layer, get_strategy(method), array, MappingOptions())
    r, l_ = count_lowrank(layer, plan, array, input_bits=4, dac_bits=1)
    assert r == count_layer(layer.r_layer, plan.factor_r, array, input_bits=4, dac_bits=1)
    assert l_.activations == plan.factor_l.cycles
    assert r.activations + l_.activations == plan.factor_r.cycles + plan.factor_l.cycles
    # Every R window sends its N pixels through every L block once: N*K_L word lines per column
    # block, N*OC columns per row block.
    fl = plan.factor_l
    assert l_.row_activations == fl.windows * fl.pixels_per_window * fl.rows_per_pixel * fl.col_tiles
    assert l_.col_activations == fl.windows * fl.pixels_per_window * fl.cols_per_pixel * fl.row_tiles
    assert l_.arrays == fl.arrays


@pytest.mark.parametrize("combine", ["sum", "pipelined"])
def test_composite_cost_is_the_factors_sum(combine):
    conv = ConvLayer("c2", 32, 32, 3, input_size=16, padding=1)
    layer = LowRankLayer.from_conv(conv, 8, 2, "input", combine)
    array = ArraySpec(128, 128, cell_bits=2, weight_bits=8)
    mapping = map_network(Network("n", (layer,)), array, ("sdk",))
    cost = cost_mapping(mapping, "sdk", CostSettings(PRESET, input_bits=8)).layers[0]
    plan = mapping.layers[0]["sdk"]
    parts = [cost_layer(c, PRESET, array) for c in
             count_lowrank(layer, plan, array, input_bits=8, dac_bits=PRESET["dac.bits"])]
    assert cost.energy_j == pytest.approx(sum(p.energy_j for p in parts), rel=1e-12)
    assert cost.area_mm2 == pytest.approx(sum(p.area_mm2 for p in parts), rel=1e-12)
    join = max if combine == "pipelined" else sum
    assert cost.latency_s == pytest.approx(join(p.latency_s for p in parts), rel=1e-12)
    assert cost.counts.activations == plan.factor_r.cycles + plan.factor_l.cycles


def test_a_decomposed_layer_costs_less_than_the_dense_one_it_replaces():
    conv = ConvLayer("c", 64, 64, 3, input_size=16, padding=1)
    array = ArraySpec(128, 128)
    dense = cost_mapping(map_network(Network("d", (conv,)), array, ("sdk",)), "sdk",
                         CostSettings(PRESET, input_bits=8))
    low = cost_mapping(map_network(Network("l", (LowRankLayer.from_conv(conv, 4),)), array, ("sdk",)),
                       "sdk", CostSettings(PRESET, input_bits=8))
    assert low.layers[0].counts.macs < dense.layers[0].counts.macs
    assert low.totals.energy_j < dense.totals.energy_j
