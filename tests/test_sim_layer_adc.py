"""The aihwkit-style per-layer mode of the wrapper (``mode="layer-adc"``): hand-computed reads, ideal
equality with the fake-quantized layer, noise seeding; and the accuracy experiment's smoke mode."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.sim import AdcSpec, NoiseSpec, SimConfig
from imcflow.sim.layer_adc import LayerAdcModel
from imcflow.sim.wrapper import on_crossbars

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def test_one_read_per_output_hand_computed():
    w = torch.tensor([[2.0, -1.0, 3.0]])
    x = torch.tensor([[1.0, 4.0, 2.0]])  # analog sum 2 - 4 + 6 = 4
    ideal = LayerAdcModel(w, None, SimConfig())
    assert ideal.run(x, "linear").tolist() == [[4.0]]
    # Full scale "max" = sum|w| x max x = 6 x 4 = 24; 4-bit signed: lsb 24 / 7; 4 / (24/7) = 1.17 -> 1.
    got = LayerAdcModel(w, None, SimConfig(adc=AdcSpec(4))).run(x, "linear").item()
    assert got == pytest.approx(24 / 7)
    # A fixed full scale clips: 2 codes of lsb 1.5 at most.
    assert LayerAdcModel(w, None, SimConfig(adc=AdcSpec(2, full_scale=1.5))).run(x, "linear").item() == 1.5
    # Calibrated: the largest |y| of the batch maps to the top code exactly.
    xs = torch.tensor([[1.0, 4.0, 2.0], [3.0, 0.0, 1.0]])  # 4 and 9
    out = LayerAdcModel(w, None, SimConfig(adc=AdcSpec(3, "calibrated"))).run(xs, "linear")
    assert out.flatten().tolist() == pytest.approx([3.0, 9.0])  # lsb 3: 4/3 -> 1 code


def test_layer_adc_mode_ideal_equals_fake_quantized_conv_and_noise_is_seeded():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, stride=2), nn.ReLU())
    x = torch.rand(2, 3, 6, 6)
    with on_crossbars(net, ArraySpec(16, 16), mode="layer-adc") as m:
        layer = m[0]
        got = layer(x) - layer.original.bias.detach()[:, None, None]
        x_int = torch.round(x.double() / (float(x.max()) / 255))
        want = F.conv2d(x_int, layer.w_int, stride=2, padding=1) * layer.w_scale[:, None, None] * float(x.max()) / 255
        assert torch.allclose(got.double(), want, atol=1e-5)
        assert layer.counters.activations == 0  # no crossbar was run
    cfg = SimConfig(seed=3, noise=NoiseSpec(sigma=0.1, read_sigma=2.0), adc=AdcSpec(6))
    layer_rec = ConvLayer("c", 3, 4, 3, input_size=6, padding=1)
    w = torch.randint(-7, 8, (4, 3, 3, 3)).double()
    xi = torch.randint(0, 16, (2, 3, 6, 6)).double()
    a, b = LayerAdcModel(w, layer_rec, cfg, "c"), LayerAdcModel(w, layer_rec, cfg, "c")
    first = a.run(xi)
    assert torch.equal(first, b.run(xi))  # same seed, same draws in a fresh model
    assert not torch.equal(first, a.run(xi))  # output noise is drawn per read
    with pytest.raises(ConfigError, match="mode"), on_crossbars(net, ArraySpec(16, 16), mode="aihwkit"):
        pass


def test_accuracy_experiment_smoke(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import exp_sim_accuracy
    finally:
        sys.path.pop(0)
    exp_sim_accuracy.main(["--smoke", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "results.json").read_text())
    assert {(r["mode"], r["adc_bits"]) for r in res["rows"]} == {
        (m, b) for m in ("crossbar", "layer-adc") for b in (None, 4)}
    assert all(0 <= r["accuracy"] <= 1 for r in res["rows"])
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    assert "| crossbar | 0.05 |" in (tmp_path / "table.md").read_text()
