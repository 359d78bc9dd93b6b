"""One tracer: ``imcflow map`` (the traced network), deployment (``compress.deploy``) and the crossbar
simulator wrapper see the same layer list, for every built-in model and for a model that calls one
module twice (issue 18, item 1)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from imcflow.compress.deploy import deploy
from imcflow.errors import UnsupportedLayerError
from imcflow.frontends.torch_trace import trace_layers, trace_module
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer
from imcflow.models import create_model, get_spec, model_names
from imcflow.networks import load_network
from imcflow.sim.executor import SimCounters, SimResult
from imcflow.sim.wrapper import SimulatedLayer, on_crossbars, simulated_layers

torch.set_num_threads(1)
ARRAY = ArraySpec(64, 64)


class SharedTwice(nn.Module):
    """A conv called twice (shared weights), 'same' padding, and a Linear on a token sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding="same")
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.proj = nn.Linear(8, 6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        x = self.shared(torch.relu(self.shared(self.stem(x))))
        tokens = self.proj(x.flatten(2).transpose(1, 2))  # (N, H*W, 6): a Linear on H*W positions
        return self.head(tokens.mean(1))


class _ShapeOnly:
    """Stands in for a layer's crossbars when only the layer records are under test: zeros of the
    layer's output shape (the crossbar arithmetic has its own exactness tests)."""

    def __init__(self, layer: ConvLayer) -> None:
        self.layer = layer

    def run(self, x: torch.Tensor) -> SimResult:
        ho, wo = self.layer.output_size()
        shape = (x.shape[0], self.layer.out_channels) + (() if x.dim() == 2 else (ho, wo))
        return SimResult(torch.zeros(shape, dtype=torch.float64), SimCounters())


def simulator_layers(model: nn.Module, shape: tuple[int, ...], monkeypatch=None) -> list[ConvLayer]:
    if monkeypatch is not None:
        monkeypatch.setattr(SimulatedLayer, "_sim", lambda self, layer: _ShapeOnly(layer))
    with on_crossbars(model, ARRAY, "im2col") as sim, torch.no_grad():
        sim(torch.zeros(1, *shape))
        return [t.layer for t in simulated_layers(sim)]


def deployed_layers(model: nn.Module, shape: tuple[int, ...]) -> list[ConvLayer]:
    return [d.layer for d in deploy(model, shape, ARRAY, methods=("im2col",)).layers]


def test_a_module_called_twice_is_two_layers_on_every_path():
    torch.manual_seed(0)
    model = SharedTwice().eval()
    shape = (3, 5, 4)
    mapped = list(trace_module(model, shape, "shared").layers)
    assert [l.name for l in mapped] == ["stem", "shared", "shared#2", "proj", "head"]
    assert mapped[0].padding == (1, 1)                       # 'same' on a 3x3 kernel, resolved once
    assert mapped[3].input_size == (20, 1)                   # 5*4 positions: a 20 x 1 map (as ONNX)
    assert deployed_layers(model, shape) == mapped
    # The real simulator (no stand-in) sees the same list, and runs the sequence Linear as its T x 1 map.
    assert simulator_layers(model, shape) == mapped
    x = torch.rand(2, *shape)
    with torch.no_grad():
        ref = model(x)
        with on_crossbars(model, ARRAY, "vwsdk") as sim:
            got = sim(x)
    assert got.shape == ref.shape  # 8-bit weights and inputs: close to float, not equal
    assert float((got - ref).abs().max()) < 0.05 * float(ref.abs().max())
    # Position by position (the model above averages positions): a Linear on (N, T, F).
    seq, tokens = nn.Sequential(nn.Linear(8, 6)), torch.rand(2, 7, 8)
    with torch.no_grad():
        ref = seq(tokens)
        with on_crossbars(seq, ARRAY, "vwsdk") as sim:
            got = sim(tokens)
            assert [t.layer.input_size for t in simulated_layers(sim)] == [(7, 1)]
    assert got.shape == (2, 7, 6) and float((got - ref).abs().max()) < 0.02 * float(ref.abs().max())


@pytest.mark.parametrize("name", model_names())
def test_builtin_models_give_one_layer_list(name, monkeypatch):
    spec = get_spec(name)
    # The ImageNet models at a smaller input keep the test light; their layer structure is the same.
    shape = spec.input_shape if spec.input_shape[1] <= 64 else (3, 64, 64)
    torch.manual_seed(0)
    model = create_model(name, in_channels=shape[0], input_size=shape[1:]).eval()
    mapped = list(load_network(name, shape).layers)  # what `imcflow map NAME --input ...` maps
    assert deployed_layers(model, shape) == mapped
    assert simulator_layers(model, shape, monkeypatch) == mapped
    assert [t.layer for t in trace_layers(model, shape)] == mapped


class WithConv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1)
        self.line = nn.Conv1d(4, 4, 1)
        self.up = nn.ConvTranspose2d(4, 4, 2)

    def forward(self, x):
        x = self.conv(x)
        n, c, h, w = x.shape
        x = self.line(x.flatten(2)).view(n, c, h, w)
        return self.up(x)


def test_unsupported_layers_are_found_one_way_on_every_path():
    model = WithConv1d()
    pattern = r"2 layer\(s\) with weights cannot be mapped.*line \(Conv1d.*up \(ConvTranspose2d"
    with pytest.raises(UnsupportedLayerError, match=pattern):
        trace_module(model, (2, 3, 3))
    with pytest.raises(UnsupportedLayerError, match=pattern):
        deploy(model, (2, 3, 3), ARRAY, methods=("im2col",))
    with pytest.raises(UnsupportedLayerError, match=pattern), on_crossbars(model, ARRAY) as sim:
        sim(torch.zeros(1, 2, 3, 3))
    assert isinstance(model.conv, nn.Conv2d) and not model._forward_hooks  # unwrapped, hooks removed
