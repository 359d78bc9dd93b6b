"""Component model and totals: published ISAAC / SRAM-macro figures, monotonic sanity, modes."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.cost import CostSettings, cost_layer, cost_mapping, cost_network, count_layer, preset_array
from imcflow.cost.components import activation_time_s, adcs_per_array, array_area_mm2
from imcflow.cost.counts import TileShape
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.hardware.preset import load_preset
from imcflow.layers import ConvLayer, linear_layer
from imcflow.mapping import map_layer, map_network
from imcflow.networks import load_network


def costed(layer, array, preset, method="im2col", mode="preloaded", input_bits=None):
    bits = input_bits or preset["defaults.input_bits"]
    counts = count_layer(layer, map_layer(layer, array, method), array, input_bits=bits,
                         dac_bits=preset["dac.bits"])
    return cost_layer(counts, preset, array, mode)


# ---- validation against published figures --------------------------------------------------------

def test_isaac_ima_power_and_area_reproduced():
    """ISAAC Table 1: one IMA (8 crossbars of 128x128, 2-bit cells, 16-bit weights and inputs) draws
    289 mW / 12 = 24.08 mW and occupies 0.157 mm2 / 12. A 128 -> 128 linear layer fills exactly the
    8 crossbars of one IMA (C' = 128 / 8 slices = 16 weights each); preloaded, they all run at once,
    so energy / latency is the IMA's power. Tolerance 1 % (the table rounds to 3 digits)."""
    p = load_preset("isaac")
    array = preset_array(p, 128, 128)
    assert (array.slices, array.usable_cols) == (8, 16)
    cost = costed(linear_layer("fc", 128, 128), array, p)
    assert cost.counts.arrays == 8 and cost.counts.activations == 8
    assert cost.latency_s == pytest.approx(16 * 100e-9)  # 16 one-bit input steps of 100 ns
    power_w = cost.energy_j / cost.latency_s
    assert power_w == pytest.approx(289e-3 / 12, rel=0.01)
    assert cost.energy_breakdown_j["accumulator"] == 0.0  # one row tile: nothing to accumulate
    assert cost.energy_breakdown_j["adc"] / cost.latency_s == pytest.approx(16e-3)  # Table 1 ADC row
    # Table 1's IMA area (with its own array area, below 4F^2 at 32 nm; the preset uses the floor)
    table1 = costed(linear_layer("fc", 128, 128), array,
                    load_preset("isaac", ["array.area_per_cell_mm2=1.52587890625e-09"]))
    assert table1.area_mm2 == pytest.approx(0.157 / 12, rel=0.01)
    assert cost.area_mm2 == pytest.approx(table1.area_mm2 + 8 * 128 * 128 * (4.096e-9 - 1.52587890625e-9))
    cost = table1
    # ... and the chip: 168 tiles x 12 IMAs of this area is Table 1's IMA share of 62.5 mm2.
    assert cost.area_mm2 * 12 * 168 == pytest.approx(0.157 * 168, rel=0.01)


def test_sram_macro_efficiency_reproduced():
    """Dong et al. ISSCC 2020: 64x64 macro, 1024 4b x 4b MACs per 5.5 ns access: 351 TOPS/W and
    372.4 GOPS. A 64 -> 16 linear layer is exactly one full access."""
    p = load_preset("sram-dong2020")
    array = preset_array(p, 64, 64)
    cost = costed(linear_layer("fc", 64, 16), array, p)
    assert cost.counts.activations == 1 and cost.counts.input_steps == 1
    assert cost.tops_per_w == pytest.approx(351, rel=1e-9)
    assert cost.ops / cost.latency_s / 1e9 == pytest.approx(372.4, rel=1e-3)
    assert cost.area_mm2 is None and cost.tops_per_mm2 is None  # not reported by the paper


# ---- component model -------------------------------------------------------------------------------

def test_adc_sharing_sets_step_time():
    p = load_preset("isaac", ["timing.pipelined=false"])
    array = ArraySpec(128, 128, cell_bits=2, weight_bits=16)
    assert adcs_per_array(p, array) == 1
    # 16 weight columns x 8 slices = 128 conversions in sequence on the one ADC, after the 100 ns read.
    t = activation_time_s(p, array, TileShape(128, 16, 1), steps=2)
    assert t == pytest.approx(2 * (100e-9 + 128 / 1.28e9))
    p2 = load_preset("isaac", ["timing.pipelined=false", "adc.columns_per_adc=32"])
    assert adcs_per_array(p2, array) == 4
    assert activation_time_s(p2, array, TileShape(128, 16, 1), 2) == pytest.approx(
        2 * (100e-9 + 32 / 1.28e9))
    # Half the columns occupied: half the conversions.
    assert activation_time_s(p, array, TileShape(128, 8, 1), 1) == pytest.approx(100e-9 + 64 / 1.28e9)


def test_walden_scaling_of_adc():
    base = load_preset("isaac")
    layer, array = ConvLayer("c", 16, 16, 3, input_size=8), preset_array(base, 128, 128)
    e8 = costed(layer, array, base).energy_breakdown_j["adc"]
    e6 = costed(layer, array, load_preset("isaac", ["adc.bits=6"])).energy_breakdown_j["adc"]
    assert e6 == pytest.approx(e8 / 4)
    lin = load_preset("isaac", ["adc.bits=4", "adc.area_scaling=linear"])
    assert array_area_mm2(lin, array, 16, 16)["adcs"] == pytest.approx(0.0012 / 2)


def test_modes_latency_and_area():
    p = load_preset("isaac")
    layer, array = ConvLayer("c", 64, 64, 3, input_size=10), preset_array(p, 128, 128)
    pre = costed(layer, array, p, mode="preloaded")
    tm = costed(layer, array, p, mode="time-multiplexed")
    n = pre.counts.arrays
    assert n > 1
    assert tm.energy_j == pytest.approx(pre.energy_j)  # same events either way
    # Every tile of this layer is full, so each activation takes the same time.
    assert tm.latency_s == pytest.approx(pre.latency_s * n)
    assert pre.area_mm2 == pytest.approx(tm.area_mm2 * n)
    with pytest.raises(ConfigError, match="mode"):
        costed(layer, array, p, mode="sometimes")


def test_network_totals_sum_layers_and_breakdown():
    p = load_preset("isaac")
    net = load_network("resnet18-paper")
    array = preset_array(p, 256, 256, cell_bits=1, weight_bits=1)
    costs = cost_network(net, array, CostSettings(p), ("im2col", "vwsdk"))
    for nc in costs.values():
        t = nc.totals
        assert t.energy_j == pytest.approx(sum(l.energy_j for l in nc.layers))
        assert t.energy_j == pytest.approx(sum(t.energy_breakdown_j.values()))
        assert t.latency_s == pytest.approx(sum(l.latency_s for l in nc.layers))
        assert t.area_mm2 == pytest.approx(sum(l.area_mm2 for l in nc.layers))
        assert t.edp_js == pytest.approx(t.energy_j * t.latency_s)
        assert t.tops_per_w == pytest.approx(t.ops / t.energy_j / 1e12)
        assert nc.cycles == map_network(net, array, (nc.method,)).totals(nc.method).cycles
        d = nc.to_dict()
        for rec in [d["totals"], *d["layers"]]:
            assert math.isclose(sum(rec["energy_breakdown_j"].values()), rec["energy_j"], rel_tol=1e-12)
        frame = nc.to_frame()
        assert list(frame["layer"])[-1] == "TOTAL" and len(frame) == len(nc.layers) + 1


def test_time_multiplexed_network_area_is_one_array():
    p = load_preset("isaac")
    array = preset_array(p, 256, 256, cell_bits=1, weight_bits=1)
    m = map_network(load_network("resnet18-paper"), array, ("flex",))
    nc = cost_mapping(m, "flex", CostSettings(p, mode="time-multiplexed", input_bits=8))
    one = array_area_mm2(p, array, 8, 8)
    assert nc.totals.area_mm2 == pytest.approx(sum(one.values()))
    assert nc.input_bits == 8


# ---- monotonic sanity over random layers ------------------------------------------------------------

layers = st.builds(lambda ic, oc, k, h, s: ConvLayer("l", ic, oc, k, input_size=h + k, stride=s),
                   st.integers(1, 40), st.integers(1, 40), st.integers(1, 3), st.integers(0, 12),
                   st.integers(1, 2))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(layers, st.sampled_from(["im2col", "sdk", "vwsdk", "flex"]), st.integers(1, 11),
       st.sampled_from(["isaac", "sram-dong2020"]), st.sampled_from(["walden", "linear"]),
       st.sampled_from(["preloaded", "time-multiplexed"]))
def test_more_adc_bits_never_cheaper(layer, method, bits, preset, law, mode):
    lo = load_preset(preset, [f"adc.bits={bits}", f"adc.energy_scaling={law}",
                              f"adc.area_scaling={law}"])
    hi = load_preset(preset, [f"adc.bits={bits + 1}", f"adc.energy_scaling={law}",
                              f"adc.area_scaling={law}"])
    array = preset_array(lo, 64, 64, cell_bits=1, weight_bits=2)
    a, b = costed(layer, array, lo, method, mode), costed(layer, array, hi, method, mode)
    assert b.energy_j >= a.energy_j
    assert b.latency_s >= a.latency_s
    if a.area_mm2 is not None:
        assert b.area_mm2 >= a.area_mm2
    assert a.energy_j == pytest.approx(sum(a.energy_breakdown_j.values()))
    # Latency and energy are positive and preloaded is never slower than one array.
    assert a.latency_s > 0 and a.energy_j > 0
    if mode == "preloaded":
        tm = costed(layer, array, lo, method, "time-multiplexed")
        assert a.latency_s <= tm.latency_s * (1 + 1e-12)


def test_cost_runs_without_torch_or_matplotlib():
    import subprocess
    import sys

    code = """
import sys
sys.modules['torch'] = None
sys.modules['matplotlib'] = None
from imcflow.cost import CostSettings, cost_network, preset_array
from imcflow.hardware.preset import load_preset
from imcflow.networks import load_network
from imcflow.report.cost_report import to_json, to_table
p = load_preset('isaac')
costs = cost_network(load_network('resnet18-paper'), preset_array(p, 512, 512, 1, 1), CostSettings(p),
                     ('im2col', 'vwsdk'))
assert costs['vwsdk'].cycles == 4294
to_table(costs); to_json(costs)
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
