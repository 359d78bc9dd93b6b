"""Model wrapper: a small CNN trained on sklearn digits inside the test keeps its (fake-quantized)
accuracy on ideal crossbars and with enough ADC bits, and loses it with too few."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imcflow.hardware.array import ArraySpec
from imcflow.sim import AdcSpec, SimConfig
from imcflow.sim.wrapper import SimulatedLayer, model_counters, on_crossbars, unwrap_model, wrap_model

torch.set_num_threads(1)


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def train_digits():
    """Train DigitsCNN on 1400 sklearn digits (seeded); return it and the 397 held-out digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:]
    torch.manual_seed(0)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):  # full batch, ~1 s
        opt.zero_grad()
        F.cross_entropy(model(x[tr]), y[tr]).backward()
        opt.step()
    model.eval()
    return model, x[te], y[te]


@pytest.fixture(scope="module")
def trained():
    return train_digits()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def adc_sweep(model, x, y, bits_list, full_scale="max"):
    """Accuracy on 64x64 arrays, 8-bit weights in 2-bit cells, 8-bit bit-serial inputs, VW-SDK."""
    out = {}
    for bits in bits_list:
        cfg = SimConfig(weight_bits=8, cell_bits=2, input_bits=8,
                        adc=None if bits is None else AdcSpec(bits, full_scale))
        with on_crossbars(model, ArraySpec(64, 64, cell_bits=2, weight_bits=8), "vwsdk", config=cfg):
            out[bits] = accuracy(model, x, y)
    return out


def test_accuracy_vs_adc_bits(trained):
    model, x, y = trained
    float_acc = accuracy(model, x, y)
    assert float_acc > 0.9
    acc = adc_sweep(model, x, y, [None, 9, 3, 2])
    # Ideal crossbar = fake-quantized model; 9 bits cover every column sum (<= 64 rows x 3 levels).
    assert acc[None] == acc[9]
    assert abs(acc[None] - float_acc) <= 0.02
    assert acc[2] < acc[None] - 0.2
    assert acc[3] <= acc[None]


def test_ideal_wrapper_equals_fake_quantized_conv(trained):
    model, x, _ = trained
    conv = model.conv2
    h = F.relu(model.conv1(x[:4])).detach()
    layer = SimulatedLayer(conv, "conv2", ArraySpec(32, 16), "flex", __import__(
        "imcflow.mapping", fromlist=["MappingOptions"]).MappingOptions(), SimConfig())
    x_int = torch.round(h.double() / (float(h.max()) / 255))
    want = F.conv2d(x_int, layer.w_int, stride=2, padding=1) * layer.w_scale[:, None, None] * (float(h.max()) / 255)
    got = layer(h) - conv.bias.detach()[:, None, None]
    assert torch.allclose(got.double(), want, atol=1e-4)


def test_wrap_and_unwrap_restore_modules(trained):
    model, x, _ = trained
    before = model(x[:2]).detach()
    wrap_model(model, ArraySpec(64, 64), "im2col")
    assert isinstance(model.conv1, SimulatedLayer) and isinstance(model.fc, SimulatedLayer)
    model(x[:2])
    c = model_counters(model)
    assert c.activations > 0
    unwrap_model(model)
    assert isinstance(model.conv1, nn.Conv2d)
    assert torch.equal(model(x[:2]).detach(), before)


def test_builtin_model_runs_on_crossbars():
    from imcflow.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with on_crossbars(model, ArraySpec(128, 128), "flex") as m:
            got = m(x)
    # 8-bit fake quantization of every layer: close to float, not equal.
    assert got.shape == ref.shape
    assert float((got - ref).abs().max()) < 0.1 * float(ref.abs().max()) + 1e-3
