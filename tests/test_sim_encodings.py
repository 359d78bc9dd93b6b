"""Every weight encoding the CLI accepts (``--weight-bits`` 1-32, ``--cell-bits`` 1-16, ``--signed``
offset|differential) runs through ``wrap_model``, ``verify`` and ``benchmarks/bench_sim.py`` and is
exact with an ideal crossbar; 1-bit offset weights are ``{-1, +1}``."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network, linear_layer
from imcflow.sim import CrossbarLayer, SimConfig, build_tiles, reference_conv
from imcflow.sim.verify import verify_layer
from imcflow.sim.wrapper import on_crossbars

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
WEIGHT_BITS = range(1, 33)  # check_int bounds of SimConfig / ArraySpec, which the CLI passes through
CELL_BITS = range(1, 17)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sim", ROOT / "benchmarks" / "bench_sim.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("signed", ["offset", "differential"])
@pytest.mark.parametrize("cell_bits", CELL_BITS)
def test_every_encoding_runs_through_wrapper_verify_and_bench(signed, cell_bits):
    torch.manual_seed(cell_bits)
    model = _Tiny().eval()
    x = torch.rand(2, 2, 4, 4)
    layer = ConvLayer("c", 3, 4, 3, input_size=5, padding=1, stride=2)
    bench = _bench()
    net = Network("one", bench.smoke_layers().layers[1:])  # the strided, grouped layer
    for wb in WEIGHT_BITS:
        cfg = SimConfig(weight_bits=wb, cell_bits=cell_bits, signed=signed, input_bits=4)
        array = ArraySpec(32, 64, cell_bits=cell_bits, weight_bits=wb)
        # wrap_model: the ideal crossbar equals the fake-quantized layer.
        with on_crossbars(model, array, "im2col", config=cfg) as m:
            sim_conv = m.conv
            got = sim_conv(x)
            w_int = sim_conv.w_int
            lo, hi = cfg.weight_range()
            assert float(w_int.min()) >= lo and float(w_int.max()) <= hi
            if cfg.binary:
                assert set(w_int.unique().tolist()) <= {-1.0, 1.0}
            x_int = torch.round(x.double() / (float(x.max()) / 15))
            want = F.conv2d(x_int, w_int, padding=1) * sim_conv.w_scale[:, None, None] * (float(x.max()) / 15)
            assert torch.allclose((got - sim_conv.original.bias.detach()[:, None, None]).double(), want,
                                  rtol=1e-5, atol=1e-5 * float(want.abs().max()) + 1e-6), wb
        # verify: exact with plan cycles (the wrapper ran VW-SDK, the benchmark runs SDK).
        assert verify_layer(layer, array, "im2col", config=cfg, batch=1).passed, wb
        # bench_sim's measurement loop, exact configuration.
        s, c, exact, rel = bench.run_config(net, "32x64", "sdk", cfg, batch=1, repeats=1)
        assert exact and rel == 0, wb


def test_bench_sim_smoke_mode_runs():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_sim.py"), "--smoke"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    last = out.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert set(fields) == {"sim_ratio", "im2col_ratio", "noisy_ratio", "peak_rss_mb"}
    assert all(float(v) > 0 for v in fields.values())
    assert out.count("exact=True") == 2 and "max_rel_error=" in out


def test_binary_offset_weights_hand_computed():
    """1-bit offset weights are {-1, +1}: cell (w + 1) / 2, read with weight 2, minus the input sum of
    the column's taps (reference column); a parallel window gets one reference column per tap
    pattern, so its structural zeros stay zero."""
    cfg = SimConfig(weight_bits=1, cell_bits=1)
    fc = linear_layer("fc", 4, 1)
    w = torch.tensor([[1.0, -1, -1, 1]])
    x = torch.tensor([[3.0, 5, 7, 11]])
    res = CrossbarLayer(build_tiles(fc, w, ArraySpec(8, 8), "im2col"), cfg).run(x)
    assert res.output.item() == 3 - 5 - 7 + 11  # 2 * (3 + 11) - (3 + 5 + 7 + 11)
    assert res.counters.adc_conversions == 2  # one weight column + one reference column
    layer = ConvLayer("c", 2, 3, 3, input_size=6, padding=1)
    gen = torch.Generator().manual_seed(0)
    w = cfg.random_weights((3, 2, 3, 3), gen)
    x = torch.randint(0, 9, (2, 2, 6, 6), generator=gen).double()
    for method in ("vwsdk", "sdk", "flex", "im2col"):
        sim = CrossbarLayer(build_tiles(layer, w, ArraySpec(64, 64), method), cfg)
        assert torch.equal(sim.run(x).output, reference_conv(layer, w, x)), method
        windows = sim.tiles.geo.a * sim.tiles.geo.b
        assert sim.ref_cols == windows * len(sim.tiles.col_index) or windows == 1
    with pytest.raises(ConfigError, match="-1 or \\+1"):
        CrossbarLayer(build_tiles(fc, torch.tensor([[1.0, 0, -1, 1]]), ArraySpec(8, 8), "im2col"), cfg)
