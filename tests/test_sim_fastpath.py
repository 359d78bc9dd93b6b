"""The executor's fast paths equal its reference paths: steps and row tiles summed inside the product
(fused) vs one output per row tile and input step, the conv engine vs the explicit gather engine (with ADC clipping, calibrated
and fixed full scales, and device noise), block scatter vs gather scatter, float32 vs float64
accumulation near the 2**24 limit."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.mapping import MappingOptions
from imcflow.sim import AdcSpec, CrossbarLayer, NoiseSpec, SimConfig, build_tiles, reference_conv
from test_sim_exact import METHODS, layers, random_data

torch.set_num_threads(1)


def _runs(layer, array, method, config, x, w, variants):
    tiles = build_tiles(layer, w, array, method, MappingOptions())
    return [CrossbarLayer(tiles, config, **kw).run(x) for kw in variants]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers(), arr=st.sampled_from([(16, 16), (32, 8), (24, 40)]),
       method=st.sampled_from(METHODS),
       wb_cb=st.sampled_from([(1, 1), (4, 2), (8, 2), (8, 3)]),
       signed=st.sampled_from(["offset", "differential"]), ib=st.sampled_from([None, 2, 5, 8]),
       signed_x=st.booleans())
def test_fused_passes_equal_per_tile_per_step_outputs(layer, arr, method, wb_cb, signed, ib, signed_x):
    wb, cb = wb_cb
    array = ArraySpec(arr[0], max(arr[1], 8), cell_bits=cb, weight_bits=wb)
    cfg = SimConfig(weight_bits=wb, cell_bits=cb, signed=signed, input_bits=ib)
    w, x = random_data(layer, cfg, signed_x, seed=ib or 1)
    fused, per_step, gather = _runs(layer, array, method, cfg, x, w,
                                    [{}, {"fused": False}, {"engine": "gather", "fused": False}])
    ref = reference_conv(layer, w, x)
    for r in (fused, per_step, gather):
        assert torch.equal(r.output, ref)
        assert r.counters == fused.counters


def _adc_configs():
    base = dict(weight_bits=4, cell_bits=2, input_bits=4)
    for fs in ("max", "calibrated", 9.0):
        for bits in (2, 3, 12):
            for rounding in ("nearest", "floor"):
                yield SimConfig(**base, adc=AdcSpec(bits, full_scale=fs, rounding=rounding))
    yield SimConfig(weight_bits=4, cell_bits=2, signed="differential", input_bits=3, adc=AdcSpec(3))
    yield SimConfig(weight_bits=4, cell_bits=4, adc=AdcSpec(5, "calibrated"))  # one signed input step


def test_adc_paths_equal_between_engines_and_fusion_settings():
    """Per-column ADC reads (clipping, rounding, every full-scale mode): the conv engine and the
    gather engine give identical outputs; fusion never applies when an ADC reads the steps."""
    layer = ConvLayer("c", 6, 10, 3, input_size=7, padding=1, stride=2)
    array = ArraySpec(24, 16, cell_bits=2, weight_bits=4)
    clipped = 0
    for cfg in _adc_configs():
        w, x = random_data(layer, cfg, signed_x=cfg.input_bits is None, seed=3)
        for method in METHODS:
            conv, per_step, gather = _runs(layer, array, method, cfg, x, w,
                                           [{}, {"fused": False}, {"engine": "gather"}])
            assert torch.equal(conv.output, gather.output), (cfg, method)
            assert torch.equal(conv.output, per_step.output)
            assert conv.counters == gather.counters
            clipped += not torch.equal(conv.output, reference_conv(layer, w, x))
    assert clipped > 0  # the coarse settings really change the result


def test_noise_paths_agree_between_engines_and_are_seeded():
    layer = ConvLayer("c", 5, 7, 3, input_size=6, padding=1)
    array = ArraySpec(32, 16, cell_bits=2, weight_bits=4)
    for noise in (NoiseSpec(sigma=0.1), NoiseSpec(stuck_on_rate=0.05, stuck_off_rate=0.05)):
        cfg = SimConfig(weight_bits=4, cell_bits=2, input_bits=4, noise=noise, seed=7)
        w, x = random_data(layer, cfg, False, seed=1)
        for method in METHODS:
            conv, per_step, gather, again = _runs(layer, array, method, cfg, x, w,
                                                  [{}, {"fused": False}, {"engine": "gather"}, {}])
            assert torch.equal(conv.output, again.output)  # same seed, same draw
            assert torch.equal(conv.output, per_step.output)
            # Conductances on the grid: the same products in another order give the same numbers.
            assert torch.equal(conv.output, gather.output)
            assert not torch.equal(conv.output, reference_conv(layer, w, x))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers(), arr=st.sampled_from([(16, 16), (32, 8), (24, 40)]),
       method=st.sampled_from(METHODS),
       wb_cb=st.sampled_from([(1, 1), (4, 2), (8, 2), (6, 4)]),
       signed=st.sampled_from(["offset", "differential"]), ib=st.sampled_from([None, 3, 8]),
       adc=st.sampled_from([None, (2, "max", "nearest"), (5, "calibrated", "floor"), (8, "max", "nearest"),
                            (4, 30.0, "nearest"), (6, 7.5, "floor")]),
       noise=st.sampled_from([(0.0, 0.0, 0.0), (0.02, 0.0, 0.0), (0.3, 0.02, 0.03), (0.05, 0.0, 0.5),
                              (0.0, 0.0, 2.0)]),
       seed=st.integers(0, 3), signed_x=st.booleans())
def test_nonideal_fast_path_equals_reference_path(layer, arr, method, wb_cb, signed, ib, adc, noise,
                                                  seed, signed_x):
    """Per-read ADC, conductance variation, stuck cells and read noise: the batched path (float32
    where exact, in-place conversion, codes summed over steps before the LSB) gives exactly the
    numbers of the per-tile, per-step reference path (``fused=False``) and of the gather engine, for
    the same seed."""
    wb, cb = wb_cb
    array = ArraySpec(arr[0], max(arr[1], 8), cell_bits=cb, weight_bits=wb)
    sigma, stuck, read = noise
    cfg = SimConfig(weight_bits=wb, cell_bits=cb, signed=signed, input_bits=ib, seed=seed,
                    adc=AdcSpec(adc[0], full_scale=adc[1], rounding=adc[2]) if adc else None,
                    noise=NoiseSpec(sigma=sigma, stuck_on_rate=stuck, stuck_off_rate=stuck,
                                    read_sigma=read))
    w, x = random_data(layer, cfg, signed_x and ib != 1, seed=seed + 11)
    fast, ref, gather = _runs(layer, array, method, cfg, x, w,
                              [{}, {"fused": False}, {"engine": "gather", "fused": False}])
    assert torch.equal(fast.output, ref.output)
    assert torch.equal(fast.output, gather.output)
    assert fast.counters == ref.counters


def test_read_noise_is_drawn_per_read_and_seeded():
    """Read noise changes from call to call (a new draw per read) but repeats in a fresh layer with
    the same seed; conductance noise alone is the same on every call."""
    layer = ConvLayer("c", 4, 6, 3, input_size=6, padding=1)
    array = ArraySpec(32, 16, cell_bits=2, weight_bits=4)
    cfg = SimConfig(weight_bits=4, cell_bits=2, input_bits=4, adc=AdcSpec(8), seed=2,
                    noise=NoiseSpec(sigma=0.02, read_sigma=0.5))
    w, x = random_data(layer, cfg, False, seed=4)
    tiles = build_tiles(layer, w, array, "vwsdk")
    a = CrossbarLayer(tiles, cfg)
    first, second = a.run(x).output, a.run(x).output
    assert not torch.equal(first, second)
    assert torch.equal(CrossbarLayer(tiles, cfg).run(x).output, first)
    static = SimConfig(weight_bits=4, cell_bits=2, input_bits=4, adc=AdcSpec(8), seed=2,
                       noise=NoiseSpec(sigma=0.02))
    b = CrossbarLayer(tiles, static)
    assert torch.equal(b.run(x).output, b.run(x).output)


def test_block_scatter_equals_gather_scatter():
    """VW-SDK's whole-channel column tiles are scattered by reshape + permute; the generic gather by
    the inverse column permutation gives the same output."""
    layer = ConvLayer("c", 4, 12, 3, input_size=9, padding=1)
    w, x = random_data(layer, SimConfig(), False, seed=5)
    for arr in ((64, 16), (64, 24), (128, 64)):
        tiles = build_tiles(layer, w, ArraySpec(*arr), "vwsdk")
        fast = CrossbarLayer(tiles)
        slow = CrossbarLayer(tiles)
        slow.col_blocks = None
        assert torch.equal(fast.run(x).output, slow.run(x).output)
        assert torch.equal(fast.run(x).output, reference_conv(layer, w, x))


def test_float64_fallback_near_the_float32_limit_stays_exact():
    """Values whose column sums exceed 2**24 run in float64; just below, float32; both exact."""
    layer = ConvLayer("c", 14, 6, 3, input_size=5, padding=1)
    array = ArraySpec(128, 64)
    gen = torch.Generator().manual_seed(0)
    for w_hi, x_hi in ((1 << 11, 1 << 12), (40, 60), (1, (1 << 20)), (1 << 6, 1 << 11)):
        w = torch.randint(-w_hi, w_hi + 1, (6, 14, 3, 3), generator=gen).double()
        x = torch.randint(0, x_hi + 1, (2, 14, 5, 5), generator=gen).double()
        for method in METHODS:
            for arr in (array, ArraySpec(32, 64)):  # one row tile; several (merged when exact)
                res = CrossbarLayer(build_tiles(layer, w, arr, method)).run(x)
                assert torch.equal(res.output, reference_conv(layer, w, x)), (w_hi, x_hi, method)
    cfg = SimConfig(weight_bits=16, cell_bits=4, input_bits=16)
    w = torch.randint(-(1 << 15), 1 << 15, (6, 14, 3, 3), generator=gen).double()
    x = torch.randint(0, 1 << 16, (2, 14, 5, 5), generator=gen).double()
    tiles = build_tiles(layer, w, ArraySpec(128, 64, cell_bits=4, weight_bits=16), "vwsdk")
    assert torch.equal(CrossbarLayer(tiles, cfg).run(x).output, reference_conv(layer, w, x))


def test_rows_merged_with_steps_kept_apart_when_the_fused_kernel_would_be_large(monkeypatch):
    """Large tiles keep the input steps apart (the step-weighted kernel would be steps x the tile) but
    still merge row tiles; the result is the same."""
    import imcflow.sim.executor as ex

    layer = ConvLayer("c", 9, 7, 3, input_size=6, padding=1)
    array = ArraySpec(16, 16, cell_bits=2, weight_bits=8)
    cfg = SimConfig(weight_bits=8, cell_bits=2, input_bits=8)
    w, x = random_data(layer, cfg, False, seed=2)
    ref = reference_conv(layer, w, x)
    monkeypatch.setattr(ex, "_FUSED_KERNEL_ELEMENTS", 0)
    for method in METHODS:
        sim = CrossbarLayer(build_tiles(layer, w, array, method), cfg)
        enc = ex.input_encoding(cfg, x, "c")
        assert [fused for _, _, fused in sim._passes(enc, True)] == [False]  # one merged pass
        assert torch.equal(sim.run(x).output, ref)
