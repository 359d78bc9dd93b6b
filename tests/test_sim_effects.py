"""Hardware effects: ADC quantization and clipping on hand-computed cases, exactness with enough ADC
bits, device noise determinism, counters."""
from __future__ import annotations

import pytest
import torch

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, linear_layer
from imcflow.sim import AdcSpec, CrossbarLayer, NoiseSpec, SimConfig, build_tiles, reference_conv
from imcflow.sim.verify import verify_layer

torch.set_num_threads(1)


def test_adc_convert_hand_cases():
    v = torch.tensor([0.0, 3, 7, 9, -1])
    fs = torch.tensor(7.0)
    assert AdcSpec(3, 7.0).convert(v, fs, signed=False).tolist() == [0, 3, 7, 7, 0]  # clips to 7
    v2 = torch.tensor([5.0, 4.9, 20, 1])
    # 7 codes cannot reach 14 with lsb 1: lsb 2; 5/2 = 2.5 rounds half up to 3 -> 6; 20 clips to 14.
    assert AdcSpec(3, 14.0).convert(v2, torch.tensor(14.0), False).tolist() == [6, 4, 14, 2]
    assert AdcSpec(3, 14.0, rounding="floor").convert(v2, torch.tensor(14.0), False).tolist() == [4, 4, 14, 0]
    # Signed 3-bit: codes [-4, 3].
    assert AdcSpec(3).convert(torch.tensor([-6.0, 5, -2]), torch.tensor(3.0), True).tolist() == [-4, 3, -2]
    assert AdcSpec(4).lsb(15, signed=False) == 1.0 and AdcSpec(4).lsb(16, signed=False) == 2.0


def _fc(w_row, x_row, cfg):
    layer = linear_layer("fc", len(w_row), 1)
    w = torch.tensor([w_row], dtype=torch.float64)
    tiles = build_tiles(layer, w, ArraySpec(16, 16, cell_bits=cfg.cell_bits,
                                            weight_bits=cfg.weight_bits or 1), "im2col")
    return CrossbarLayer(tiles, cfg).run(torch.tensor([x_row], dtype=torch.float64))


def test_adc_clipping_end_to_end_hand_computed():
    # Differential 1-bit weights all +1: the positive column sums the inputs, the negative one reads 0.
    base = dict(weight_bits=1, cell_bits=1, signed="differential")
    res = _fc([1, 1, 1, 1], [3, 3, 3, 3], SimConfig(**base, adc=AdcSpec(3, full_scale=7.0)))
    assert res.output.item() == 7  # column value 12 clipped at 7 codes of lsb 1
    # Full scale "max" = 4 rows x level 1 x input 3 = 12: lsb 2, 12 is exact, 3 -> 1.5 -> 2 codes -> 4.
    cfg = SimConfig(**base, adc=AdcSpec(3, full_scale="max"))
    assert _fc([1, 1, 1, 1], [3, 3, 3, 3], cfg).output.item() == 12
    assert _fc([1, 1, 1, 1], [3, 0, 0, 0], cfg).output.item() == 4
    # Two columns per weight and 4 input steps... conversions counted per column read per step.
    res = _fc([1, 1, 1, 1], [3, 3, 3, 3], SimConfig(**base, input_bits=2))
    assert res.output.item() == 12 and res.counters.adc_conversions == 2 * 2
    assert res.counters.active_rows == 4 and res.counters.active_cols == 1


@pytest.mark.parametrize("full_scale", ["max", "calibrated"])
def test_enough_adc_bits_is_exact_and_few_bits_is_not(full_scale):
    layer = ConvLayer("c", 6, 5, 3, input_size=7, padding=1, stride=2)
    array = ArraySpec(32, 32, cell_bits=2, weight_bits=4)
    for method in ("im2col", "vwsdk", "flex", "sdk"):
        exact = SimConfig(weight_bits=4, cell_bits=2, input_bits=4, adc=AdcSpec(12, full_scale))
        assert verify_layer(layer, array, method, config=exact, batch=2).passed
        coarse = SimConfig(weight_bits=4, cell_bits=2, input_bits=4, adc=AdcSpec(2, full_scale))
        check = verify_layer(layer, array, method, config=coarse, batch=2)
        assert not check.passed and check.max_abs_error > 0 and check.activations_ok


def test_noise_is_seeded_and_perturbs():
    layer = ConvLayer("c", 4, 4, 3, input_size=6, padding=1)
    w = torch.randint(-8, 8, (4, 4, 3, 3)).double()
    x = torch.randint(0, 16, (2, 4, 6, 6)).double()
    array = ArraySpec(32, 32, cell_bits=2, weight_bits=4)
    tiles = build_tiles(layer, w, array, "flex")
    def out(noise, seed):
        cfg = SimConfig(weight_bits=4, cell_bits=2, noise=noise, seed=seed)
        return CrossbarLayer(tiles, cfg).run(x).output
    ref = reference_conv(layer, w, x)
    n = NoiseSpec(sigma=0.05, stuck_on_rate=0.01, stuck_off_rate=0.01)
    a, b, c = out(n, 1), out(n, 1), out(n, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, ref)
    assert torch.equal(out(NoiseSpec(), 3), ref)  # zero noise is exact
    # All cells stuck off with a differential pair: every output is 0.
    cfg = SimConfig(weight_bits=4, cell_bits=2, signed="differential",
                    noise=NoiseSpec(stuck_off_rate=1.0))
    arr_d = ArraySpec(32, 32, cell_bits=2, weight_bits=4)
    assert CrossbarLayer(build_tiles(layer, w, arr_d, "im2col"), cfg).run(x).output.abs().max() == 0


def test_invalid_effect_parameters():
    with pytest.raises(ConfigError, match="adc_bits"):
        AdcSpec(0)
    with pytest.raises(ConfigError, match="full_scale"):
        AdcSpec(4, full_scale="huge")
    with pytest.raises(ConfigError, match="sigma"):
        NoiseSpec(sigma=-1)
    with pytest.raises(ConfigError, match="stuck_on_rate"):
        NoiseSpec(stuck_on_rate=2)
    with pytest.raises(ConfigError, match="read_sigma"):
        NoiseSpec(read_sigma=float("inf"))
    with pytest.raises(ConfigError, match="resolution_bits"):
        NoiseSpec(resolution_bits=30)
    with pytest.raises(ConfigError, match="signed"):
        SimConfig(signed="twos")
