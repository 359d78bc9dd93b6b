"""The README's extension examples (section *Development*) are the files in examples/extend/, byte for
byte, and they work: a strategy that maps, costs and verifies exactly, a compression method, a preset
and a network format, each one file."""
from __future__ import annotations

import importlib.util
import runpy
from pathlib import Path

import pytest
import torch
from torch import nn

from imcflow.compress.base import METHODS, CompressionContext, get_method
from imcflow.cost import CostSettings, cost_mapping
from imcflow.hardware.array import ArraySpec
from imcflow.hardware.preset import PRESETS, load_preset
from imcflow.layers import ConvLayer
from imcflow.mapping import STRATEGIES, MappingOptions, map_network
from imcflow.networks import FILE_LOADERS, load_network
from imcflow.sim.verify import verify_network

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "extend"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"readme_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["my_strategy.py", "my_method.py", "register_preset.py",
                                  "my_frontend.py"])
def test_readme_shows_the_example_file_verbatim(name):
    text = (EXAMPLES / name).read_text(encoding="utf-8").rstrip("\n")
    assert f"```python\n{text}\n```" in README


LAYERS = [ConvLayer("c1", 3, 8, 3, input_size=9, padding=1),
          ConvLayer("c2", 8, 12, 3, input_size=9, stride=2, padding=1),
          ConvLayer("dw", 12, 12, 3, input_size=5, padding=1, groups=12),
          ConvLayer("fc", 48, 10, 1, input_size=1, kind="linear")]


def test_strategy_example_maps_costs_and_simulates_exactly():
    window = _module("my_strategy").Window2x2()
    array = ArraySpec(64, 32)
    with STRATEGIES.override(window.name, window):
        result = map_network(LAYERS, array)  # default: every registered strategy
        assert result.methods[-1] == "window2x2"
        c1 = result.layers[0]["window2x2"]
        # 9x9 outputs in 2x2 windows: 5x5 windows; PW 4x4x3 = 48 rows (1 tile), 2*2*8 = 32 columns.
        assert (c1.windows, c1.row_tiles, c1.col_tiles, c1.cycles) == (25, 1, 1, 25)
        assert all(r["window2x2"].cycles >= r["window2x2"].lower_bound for r in result.layers)
        cost = cost_mapping(result, "window2x2", CostSettings(load_preset("isaac")))
        assert cost.cycles == result.totals("window2x2").cycles and cost.totals.energy_j > 0
        report = verify_network(LAYERS, array, ["window2x2"], MappingOptions())
        assert report.passed and all(k.activations == k.cycles for k in report.checks)
    assert "window2x2" not in STRATEGIES.names()


def test_method_example_prunes_below_the_threshold():
    method = _module("my_method").ThresholdPruning()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    expected = {name: int((m.weight.abs() < 0.3 * m.weight.abs().max()).sum())
                for name, m in (("0", model[0]), ("3", model[3]))}
    with METHODS.override(method.name, method):
        found = get_method("threshold")
        options = found.resolve_options({"threshold": "0.3"})
        ctx = CompressionContext(array=ArraySpec(64, 64), mapping=MappingOptions(), options=options,
                                 network=None, input_shape=(3, 6, 6), round=0)
        step = found.apply(model, ctx)
    assert step.changed and step.summary["zeroed"] == expected
    assert int((model[0].weight == 0).sum()) == expected["0"]
    assert "threshold" not in METHODS.names()


def test_preset_example_registers_a_named_preset():
    with PRESETS.scoped():
        runpy.run_path(str(EXAMPLES / "register_preset.py"))
        preset = load_preset("isaac-6b-adc")
        assert preset["adc.bits"] == 6 and load_preset("isaac")["adc.bits"] == 8
        assert {k: v for k, v in preset.values.items() if k != "adc.bits"} == \
            {k: v for k, v in load_preset("isaac").values.items() if k != "adc.bits"}
    assert "isaac-6b-adc" not in PRESETS.names()


def test_frontend_example_loads_a_layers_file(tmp_path):
    read_layers_file = _module("my_frontend").read_layers_file
    path = tmp_path / "tiny.layers"
    path.write_text("# H,W,Kh,Kw,IC,OC,stride,padding\n32,32,3,3,3,16,1,1\n16,16,3,3,16,32,2,1  # down\n")
    with FILE_LOADERS.override(".layers", read_layers_file):
        net = load_network(str(path))
    assert net.name == "tiny" and [l.name for l in net.layers] == ["layer1", "layer2"]
    assert net.layers[1] == ConvLayer("layer2", 16, 32, 3, input_size=16, stride=2, padding=1)
    assert ".layers" not in FILE_LOADERS.names()
