"""The torch tracing frontend: layer records from forward hooks, unsupported layers, model files."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from imcflow.cli import main as cli_main
from imcflow.errors import ConfigError, UnsupportedLayerError
from imcflow.frontends.torch_trace import load_python_factory, trace_module
from imcflow.networks import load_network

torch.set_num_threads(1)


class TwoPath(nn.Module):
    """A shared conv called twice, a strided/dilated/grouped conv, and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.shared = nn.Conv2d(8, 8, 1)
        self.body = nn.Sequential(nn.BatchNorm2d(8), nn.PReLU(),
                                  nn.Conv2d(8, 16, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                                            groups=4))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.shared(self.shared(self.stem(x)))
        x = self.body(x)
        return self.head(x.mean((2, 3)))


def test_trace_records_every_call_in_order():
    net = trace_module(TwoPath(), (3, 12, 10), "twopath")
    assert [l.name for l in net.layers] == ["stem", "shared", "shared#2", "body.2", "head"]
    stem, shared, shared2, body, head = net.layers
    assert (stem.H, stem.W, stem.IC, stem.OC, stem.padding, stem.bias) == (12, 10, 3, 8, (1, 1), False)
    assert shared.bias and shared2.input_size == (12, 10)
    assert (body.kernel_size, body.stride, body.padding, body.dilation, body.groups) == \
        ((3, 5), (2, 1), (1, 2), (1, 2), 4)
    assert body.output_size() == (6, 6)  # W: 10 + 2*2 - (2*(5-1)+1) + 1
    assert (head.kind, head.IC, head.OC, head.input_size) == ("linear", 16, 5, (1, 1))
    assert net.input_shape == (3, 12, 10) and net.meta["output_shape"] == (5,)
    assert net.source == "torch" and net.geometry == "real"


class KeywordCall(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(input=x)


def test_keyword_input_is_seen():
    layer = trace_module(KeywordCall(), (3, 8, 8)).layers[0]
    assert (layer.name, layer.input_size, layer.output_size()) == ("conv", (8, 8), (6, 6))


def test_trace_restores_training_mode_and_removes_hooks():
    model = TwoPath().train()
    trace_module(model, (3, 8, 8))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_linear_on_a_sequence_counts_positions():
    model = nn.Sequential(nn.Linear(12, 4))
    layer = trace_module(model, (7, 12)[1:], "mlp").layers[0]
    assert layer.input_size == (1, 1)
    seq = nn.Sequential(nn.Flatten(2), nn.Linear(6, 4))  # (1, 5, 6) after flatten of (5, 2, 3)
    layer = trace_module(seq, (5, 2, 3), "seq").layers[0]
    # T positions are a T x 1 map, as the ONNX importer reads a MatMul on (N, T, K).
    assert (layer.input_size, layer.IC, layer.OC) == ((5, 1), 6, 4)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_string_padding():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding="same"), nn.Conv2d(4, 4, (5, 3), padding="valid"))
    a, b = trace_module(model, (2, 9, 9)).layers
    assert a.padding == (1, 1) and b.padding == (0, 0) and b.output_size() == (5, 7)
    with pytest.raises(UnsupportedLayerError, match="0 .*padding='same'.*even"):
        trace_module(nn.Sequential(nn.Conv2d(2, 4, 2, padding="same")), (2, 9, 9))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 4, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.custom = Functional()
        self.scale = nn.Parameter(torch.ones(1))  # a scalar on the root: not a weight matrix
        self.seq = nn.Conv1d(4, 4, 3, padding=1)
        self.vol = nn.Conv3d(1, 2, 1)
        self.unused = nn.ConvTranspose2d(2, 2, 2)  # defined but never called: not an offender
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.custom(self.up(self.conv(x)))
        s = self.seq(x.flatten(2))
        v = self.vol(x.unsqueeze(1))
        return self.fc(s.mean(2) + v.mean((1, 3, 4)).unsqueeze(1)) * self.scale


def test_unsupported_layers_are_all_listed_in_one_error():
    with pytest.raises(UnsupportedLayerError) as info:
        trace_module(Mixed(), (1, 6, 6), "mixed")
    msg = str(info.value)
    assert "4 layer(s)" in msg
    for name, kind in [("up", "ConvTranspose2d"), ("custom", "Functional"), ("seq", "Conv1d"),
                       ("vol", "Conv3d")]:
        assert f"{name} ({kind}" in msg
    assert "unused" not in msg and "mixed (" not in msg


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="expected a torch.nn.Module, got int"):
        trace_module(3, (3, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CxHxW"):
        trace_module(TwoPath(), (3, 8))
    with pytest.raises(ConfigError, match="forward pass on input shape 5x8x8 failed: RuntimeError"):
        trace_module(TwoPath(), (5, 8, 8))
    with pytest.raises(ConfigError, match="called no Conv2d or Linear"):
        trace_module(nn.Sequential(nn.ReLU()), (3, 8, 8), "relu")


def test_meta_device_model_traces_like_a_real_one():
    with torch.device("meta"):
        meta = TwoPath()
    assert trace_module(meta, (3, 12, 10), "t") == trace_module(TwoPath(), (3, 12, 10), "t")


@settings(max_examples=40)
@given(h=st.integers(1, 20), w=st.integers(1, 20), kh=st.integers(1, 5), kw=st.integers(1, 5),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       dh=st.integers(1, 2), dw=st.integers(1, 2), g=st.sampled_from([1, 2, 4]),
       icg=st.integers(1, 3), ocg=st.integers(1, 3))
def test_traced_geometry_matches_torch(h, w, kh, kw, sh, sw, ph, pw, dh, dw, g, icg, ocg):
    # Whatever the conv, the record's real-geometry output size is the map torch produced, and its
    # weight count is the module's.
    if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
        return  # torch rejects these too
    conv = nn.Conv2d(icg * g, ocg * g, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups=g)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[2:])))
    layer = trace_module(conv, (icg * g, h, w), "c").layers[0]
    assert layer.name == "c"  # the root module is named after the network
    assert layer.output_size() == seen[0]
    assert layer.weight_count == conv.weight.numel()
    assert layer.macs == seen[0][0] * seen[0][1] * conv.weight.numel()


MODEL_FILE = """
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))

def build():
    return Net()

def not_a_model():
    return 42

def broken():
    raise RuntimeError("no weights here")

CONSTANT = 3
"""


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "user_model.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    return str(path)


def test_load_python_factory(model_file):
    net = load_python_factory(model_file, "build", (3, 32, 32))
    assert [(l.name, l.H, l.IC, l.OC) for l in net.layers] == \
        [("features.0", 32, 3, 16), ("features.3", 16, 16, 32), ("fc", 1, 32, 10)]
    assert net.name == "user_model:build" and net.input_shape == (3, 32, 32)
    assert load_network(f"{model_file}:build", (3, 32, 32)) == net


def test_model_file_may_import_its_siblings(tmp_path):
    (tmp_path / "blocks_for_imcflow_test.py").write_text(
        "import torch.nn as nn\n\ndef block():\n    return nn.Conv2d(2, 3, 3)\n")
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\nfrom blocks_for_imcflow_test import block\n\n"
        "def make():\n    return nn.Sequential(block(), nn.Conv2d(3, 4, 1))\n")
    net = load_python_factory(str(tmp_path / "net.py"), "make", (2, 5, 5))
    assert [(l.name, l.H, l.IC, l.OC) for l in net.layers] == [("0", 5, 2, 3), ("1", 3, 3, 4)]
    assert str(tmp_path) not in sys.path


def test_load_python_factory_errors(model_file, tmp_path):
    with pytest.raises(ConfigError, match="--input CxHxW is required"):
        load_python_factory(model_file, "build", None)
    with pytest.raises(ConfigError, match="model file not found: .*missing.py"):
        load_python_factory(str(tmp_path / "missing.py"), "build", (3, 32, 32))
    with pytest.raises(ConfigError, match="defines no 'make'; callables there: .*build.*not_a_model"):
        load_python_factory(model_file, "make", (3, 32, 32))
    with pytest.raises(ConfigError, match="'CONSTANT' is a int, not a callable"):
        load_python_factory(model_file, "CONSTANT", (3, 32, 32))
    with pytest.raises(ConfigError, match=r"not_a_model\(\) must return a torch.nn.Module, got int"):
        load_python_factory(model_file, "not_a_model", (3, 32, 32))
    with pytest.raises(ConfigError, match=r"calling broken\(\) failed: RuntimeError: no weights here"):
        load_python_factory(model_file, "broken", (3, 32, 32))
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_real_module_xyz\n")
    with pytest.raises(ConfigError, match="importing .*bad.py failed: ModuleNotFoundError"):
        load_python_factory(str(bad), "build", (3, 32, 32))


def test_cli_maps_a_model_file(model_file, capsys):
    assert cli_main(["map", f"{model_file}:build", "--input", "3x32x32", "--array", "64x64"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "features.3" in out and "fc" in out
    assert cli_main(["map", f"{model_file}:build", "--array", "64x64"]) == 2
    assert "--input CxHxW is required" in capsys.readouterr().err
