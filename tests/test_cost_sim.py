"""The cost model's counts equal the simulator's counters on the same plan (activations, driven rows,
read weight columns, input steps, conversions)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
sim = pytest.importorskip("imcflow.sim")

from imcflow.cost import count_layer  # noqa: E402
from imcflow.hardware.array import ArraySpec  # noqa: E402
from imcflow.layers import ConvLayer  # noqa: E402

CASES = [
    (ConvLayer("a", 3, 8, 3, input_size=6), ArraySpec(16, 8)),
    (ConvLayer("b", 5, 3, 3, input_size=6), ArraySpec(40, 12)),
    (ConvLayer("c", 2, 2, 3, input_size=6), ArraySpec(16, 8)),
    (ConvLayer("d", 5, 5, 3, input_size=4, groups=5), ArraySpec(40, 16)),
    (ConvLayer("e", 6, 4, 3, input_size=7, stride=2, padding=1), ArraySpec(24, 10)),
    (ConvLayer("f", 4, 6, 1, input_size=5), ArraySpec(8, 8)),
]


@pytest.mark.parametrize("method", ["im2col", "sdk", "vwsdk", "flex"])
@pytest.mark.parametrize("layer, array", CASES, ids=[l.name for l, _ in CASES])
def test_counts_match_simulator(layer, array, method):
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    w = torch.randint(-3, 4, (layer.out_channels, layer.in_channels // layer.groups,
                              *layer.kernel_size), generator=gen).double()
    x = torch.randint(0, 4, (1, layer.in_channels, *layer.input_size), generator=gen).double()
    tiles = sim.build_tiles(layer, w, array, method)
    crossbar = sim.CrossbarLayer(tiles)
    result = crossbar.run(x)
    sc = result.counters
    counts = count_layer(layer, tiles.plan, array, input_bits=1, dac_bits=1)
    steps = sc.input_steps // sc.activations
    assert sc.activations == counts.activations == tiles.plan.cycles
    assert sc.active_rows == counts.row_activations
    assert sc.active_cols == counts.col_activations
    # The simulator converts every physical column it programs: weight columns x columns per weight,
    # plus one reference column per activation under offset encoding.
    ref = sc.activations if crossbar.ref_cols else 0
    assert sc.adc_conversions == (counts.col_activations * crossbar.cpw + ref) * steps
    if crossbar.cpw == counts.slices and not crossbar.ref_cols:
        assert sc.adc_conversions == counts.adc_conversions * steps


@pytest.mark.parametrize("signed", ["offset", "differential"])
@pytest.mark.parametrize("method", ["im2col", "vwsdk", "flex"])
def test_bit_sliced_counts_match_simulator(method, signed):
    """4-bit weights in 2-bit cells, 4-bit bit-serial inputs: the cost model's conversions
    (weight columns x 2 slices x 4 steps) are the simulator's, up to its signed encoding's extra
    columns (offset: one reference column per activation; differential: two cells per slice)."""
    torch.set_num_threads(1)
    layer, array = ConvLayer("s", 3, 8, 3, input_size=6), ArraySpec(16, 32, cell_bits=2, weight_bits=4)
    gen = torch.Generator().manual_seed(1)
    w = torch.randint(-3, 4, (8, 3, 3, 3), generator=gen).double()
    x = torch.randint(0, 16, (1, 3, 6, 6), generator=gen).double()
    cfg = sim.SimConfig(weight_bits=4, cell_bits=2, signed=signed, input_bits=4)
    tiles = sim.build_tiles(layer, w, array, method)
    crossbar = sim.CrossbarLayer(tiles, cfg)
    result = crossbar.run(x)
    assert bool((result.output == torch.nn.functional.conv2d(x, w)).all())
    sc, counts = result.counters, count_layer(layer, tiles.plan, array, input_bits=4, dac_bits=1)
    assert sc.input_steps == counts.activations * counts.input_steps
    assert (sc.active_rows, sc.active_cols) == (counts.row_activations, counts.col_activations)
    extra = {"offset": counts.activations * counts.input_steps, "differential": counts.adc_conversions}
    assert sc.adc_conversions == counts.adc_conversions + extra[signed]
