"""The simulated crossbar tiles of every mapping compute the convolution exactly, with exactly the
plan's number of activations (hypothesis over random layers, both geometries, both engines)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, linear_layer
from imcflow.mapping import MappingOptions, map_layer
from imcflow.sim import CrossbarLayer, SimConfig, build_tiles, reference_conv

torch.set_num_threads(1)
METHODS = ("im2col", "sdk", "vwsdk", "flex")
ARRAYS = [(16, 16), (32, 8), (8, 8), (64, 64), (24, 40)]


@st.composite
def layers(draw):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups == 1
    if depthwise:
        ic = oc = groups = draw(st.sampled_from([2, 4, 6]))
    else:
        ic = groups * draw(st.integers(1, 5))
        oc = groups * draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    s = draw(st.sampled_from([1, 1, 2, 3]))
    d = draw(st.sampled_from([1, 1, 2]))
    p = draw(st.integers(0, 2))
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    h, w = max(h, d * (kh - 1) + 1), max(w, d * (kw - 1) + 1)
    return ConvLayer("l", ic, oc, (kh, kw), input_size=(h, w), stride=s, padding=p, dilation=d,
                     groups=groups)


def random_data(layer, config, signed_x=False, seed=0, batch=2):
    """Seeded integer weights and inputs in the ranges ``config`` can represent exactly."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = config.weight_range() or (-20, 20)
    shape = (layer.out_channels, layer.group_in_channels, *layer.kernel_size)
    w = config.random_weights(shape, gen) if config.binary else \
        torch.randint(lo, hi + 1, shape, generator=gen).double()
    ib = config.input_bits or 6
    xlo, xhi = (-(1 << (ib - 1)), (1 << (ib - 1)) - 1) if signed_x else (0, (1 << ib) - 1)
    x = torch.randint(xlo, xhi + 1, (batch, layer.in_channels, *layer.input_size), generator=gen).double()
    return w, x


def run_case(layer, array, method, geometry, config, batch=2, engine="conv", seed=0, signed_x=False):
    w, x = random_data(layer, config, signed_x, seed, batch)
    tiles = build_tiles(layer, w, array, method, MappingOptions(geometry=geometry))
    res = CrossbarLayer(tiles, config, engine=engine).run(x)
    return tiles, res, reference_conv(layer, w, x, geometry)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers(), arr=st.sampled_from(ARRAYS), geometry=st.sampled_from(["real", "paper"]),
       engine=st.sampled_from(["conv", "gather", "auto"]))
def test_every_method_equals_conv2d_with_plan_cycles(layer, arr, geometry, engine):
    array = ArraySpec(*arr)
    for method in METHODS:
        tiles, res, ref = run_case(layer, array, method, geometry, SimConfig(), engine=engine)
        assert res.output.shape == ref.shape
        assert torch.equal(res.output, ref), (layer, arr, method, geometry)
        assert res.counters.activations == tiles.plan.cycles * 2
        assert not tiles.plan_mismatches
        for t in tiles.tiles():  # no tile larger than the array
            assert t.shape[0] <= array.rows and t.shape[1] <= array.usable_cols


@settings(max_examples=60, deadline=None, derandomize=True)
@given(layer=layers(), arr=st.sampled_from(ARRAYS), method=st.sampled_from(METHODS),
       wb_cb=st.sampled_from([(1, 1), (2, 1), (4, 2), (8, 2), (8, 3), (5, 5)]),
       signed=st.sampled_from(["offset", "differential"]), ib=st.sampled_from([None, 1, 3, 8]),
       signed_x=st.booleans())
def test_bit_slicing_and_bit_serial_stay_exact(layer, arr, method, wb_cb, signed, ib, signed_x):
    wb, cb = wb_cb
    array = ArraySpec(arr[0], max(arr[1], 8), cell_bits=cb, weight_bits=wb)
    cfg = SimConfig(weight_bits=wb, cell_bits=cb, signed=signed, input_bits=ib)
    tiles, res, ref = run_case(layer, array, method, "real", cfg, signed_x=signed_x and ib != 1)
    assert torch.equal(res.output, ref)
    steps = ib or 1
    assert res.counters.activations == tiles.plan.cycles * 2
    assert res.counters.input_steps == res.counters.activations * steps


def test_linear_layer_and_flat_input():
    layer = linear_layer("fc", 70, 9)
    array = ArraySpec(32, 8)
    for method in METHODS:
        w = torch.randint(-5, 6, (9, 70)).double()
        x = torch.randint(0, 9, (3, 70)).double()
        res = CrossbarLayer(build_tiles(layer, w, array, method)).run(x)
        assert torch.equal(res.output, x @ w.T)
        assert res.counters.activations == 3 * map_layer(layer, array, method).cycles


def test_flex_packs_depthwise_groups_block_diagonally():
    layer = ConvLayer("dw", 8, 8, 3, input_size=4, padding=1, groups=8)
    array = ArraySpec(128, 128)
    tiles, res, ref = run_case(layer, array, "flex", "real", SimConfig())
    assert tiles.plan.groups_per_tile == 3 and tiles.geo.sets == 3  # the last set holds 2 groups
    assert torch.equal(res.output, ref)
    t = tiles.tile(0, 0, 0)
    # Cells only connect an output channel to its own input channel.
    r, c = np.nonzero(t.weights)
    assert (t.row_channel[r] == t.col_channel[c]).all()


def test_tile_cells_follow_section_6():
    """VW-SDK cell = W[o, c, y-wy, x-wx] (mapping.md section 6), checked cell by cell."""
    layer = ConvLayer("c", 3, 4, (2, 3), input_size=(6, 7))
    array = ArraySpec(64, 32)
    w = torch.arange(4 * 3 * 2 * 3, dtype=torch.float64).reshape(4, 3, 2, 3) + 1
    tiles = build_tiles(layer, w, array, "vwsdk")
    win = tiles.plan.window
    assert (win.a, win.b) != (1, 1)
    for t in tiles.tiles():
        for r in range(t.shape[0]):
            for c in range(t.shape[1]):
                i, j = t.row_y[r] - t.col_wy[c], t.row_x[r] - t.col_wx[c]
                want = w[t.col_channel[c], t.row_channel[r], i, j] if 0 <= i < 2 and 0 <= j < 3 else 0
                assert t.weights[r, c] == want
        assert len(t.to_frame()) == np.count_nonzero(t.weights)


def test_bad_inputs_are_config_errors():
    layer = ConvLayer("c", 2, 2, 3, input_size=5)
    tiles = build_tiles(layer, torch.ones(2, 2, 3, 3), ArraySpec(16, 16))
    with pytest.raises(ConfigError, match="input shape"):
        CrossbarLayer(tiles).run(torch.ones(1, 3, 5, 5))
    with pytest.raises(ConfigError, match="integer inputs"):
        CrossbarLayer(tiles).run(torch.full((1, 2, 5, 5), 0.5))
    with pytest.raises(ConfigError, match="weight shape"):
        build_tiles(layer, torch.ones(2, 2, 3, 2), ArraySpec(16, 16))
    with pytest.raises(ConfigError, match="outside the 2-bit"):
        CrossbarLayer(build_tiles(layer, torch.full((2, 2, 3, 3), 5.0), ArraySpec(16, 16)),
                      SimConfig(weight_bits=2))
    with pytest.raises(ConfigError, match="outside the 3-bit"):
        CrossbarLayer(tiles, SimConfig(input_bits=3)).run(torch.full((1, 2, 5, 5), 9.0))
