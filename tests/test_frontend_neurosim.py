"""NeuroSim NetWork.csv import/export and trace files, against NeuroSim's own file and torch conv2d."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.errors import ConfigError, FormatError
from imcflow.frontends.neurosim import (
    input_bit_matrix,
    neurosim_rows,
    neurosim_trace,
    parse_neurosim_csv,
    random_trace,
    unfold_input,
)
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import map_layer
from imcflow.networks import load_network

# DNN+NeuroSim's own Inference_pytorch/NeuroSIM/NetWork_VGG8.csv (V1.4 ac828e6; the same bytes in V1.3
# and V2.1), CRLF line endings as shipped: raw 32x32 sizes, pool flags after conv2/4/6.
NEUROSIM_VGG8 = (Path(__file__).parent / "data" / "neurosim" / "NetWork_VGG8.csv").read_bytes().decode()


def _fields(layer: ConvLayer) -> dict:
    d = layer.to_dict()
    d.pop("name")
    d.pop("bias")
    return d


def test_neurosim_vgg8_file_is_the_built_in_vgg8():
    ours = load_network("vgg8-cifar")
    imported = parse_neurosim_csv(NEUROSIM_VGG8, padding="neurosim")
    assert [_fields(l) for l in imported.layers] == [_fields(l) for l in ours.layers]
    assert imported.meta["neurosim"] == {"padding": "neurosim", "pool_flags": [0, 1, 0, 1, 0, 1, 0, 0],
                                         "columns": [8]}
    # Export of the traced model reproduces NeuroSim's file byte for byte, pool flags included.
    assert neurosim_rows(ours, "neurosim").to_csv() == NEUROSIM_VGG8


def test_padded_import_takes_sizes_literally():
    net = parse_neurosim_csv(NEUROSIM_VGG8)  # default: padded
    assert net.meta["neurosim"]["padding"] == "padded"
    assert net.layers[0].padding == (0, 0) and net.layers[0].output_size() == (30, 30)
    assert [l.kind for l in net.layers] == ["conv"] * 6 + ["linear"] * 2
    assert [l.name for l in net.layers] == [f"conv{i}" for i in range(1, 7)] + ["fc1", "fc2"]


def test_seven_column_files_mean_stride_one():
    net = parse_neurosim_csv("32,32,3,3,3,16,1\n16,16,16,3,3,16,0\n")
    assert [l.stride for l in net.layers] == [(1, 1), (1, 1)]
    assert net.meta["neurosim"]["columns"] == [7]


def test_padded_export_keeps_resnet18_window_counts_and_mapping():
    net = load_network("resnet18")
    export = neurosim_rows(net, "padded")
    assert export.to_csv().splitlines()[0] == "230,230,3,7,7,64,1,2"   # 224+2*3, maxpool follows
    assert export.to_csv().splitlines()[-1] == "1,1,512,1,1,1000,0,1"
    back = parse_neurosim_csv(export.to_csv(), padding="padded")
    array = ArraySpec(256, 256)
    for a, b, row in zip(net.layers, back.layers, export.rows, strict=False):
        assert a.output_size() == b.output_size()
        assert (a.IC, a.OC, a.kernel_size, a.stride) == (b.IC, b.OC, b.kernel_size, b.stride)
        assert map_layer(a, array, "vwsdk") .cycles == map_layer(b, array, "vwsdk").cycles
        if a.kind == "conv":   # NeuroSim's own count, int((H-K+1)/s)^2, is the real one here
            assert row.neurosim_windows == a.output_size()[0] * a.output_size()[1]
    assert export.window_mismatches == ()


def _same_padded_network(draw) -> Network:
    layers = []
    for i in range(draw(st.integers(1, 6))):
        k = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
        h = draw(st.integers(max(k), 40))
        w = draw(st.integers(max(k), 40))
        layers.append(ConvLayer(f"l{i}", draw(st.integers(1, 64)), draw(st.integers(1, 64)), k,
                                input_size=(h, w), stride=draw(st.integers(1, 3)),
                                padding=((k[0] - 1) // 2, (k[1] - 1) // 2)))
    if draw(st.booleans()):
        layers.append(ConvLayer("fc", draw(st.integers(1, 500)), draw(st.integers(1, 50)), 1, kind="linear"))
    return Network("rnd", tuple(layers))


@settings(max_examples=60)
@given(data=st.data())
def test_round_trips(data):
    net = _same_padded_network(data.draw)
    # neurosim convention: raw sizes + restored 'same' padding give back every field (but the kind:
    # a 1x1 conv on a 1x1 map and a linear layer are the same row).
    text = neurosim_rows(net, "neurosim").to_csv()
    back = parse_neurosim_csv(text, padding="neurosim")
    def strip(layers):
        return [{k: v for k, v in _fields(l).items() if k != "kind"} for l in layers]
    assert strip(back.layers) == strip(net.layers)
    # file -> network -> file is the identity, for both conventions.
    for padding in ("neurosim", "padded"):
        text = neurosim_rows(net, padding).to_csv()
        assert neurosim_rows(parse_neurosim_csv(text, padding=padding), padding).to_csv() == text
    # padded convention: output sizes (all the mapping depends on) survive, for any padding.
    back = parse_neurosim_csv(neurosim_rows(net, "padded").to_csv(), padding="padded")
    assert [l.output_size() for l in back.layers] == [l.output_size() for l in net.layers]


def test_grouped_and_dilated_layers_are_refused_or_expanded():
    dw = ConvLayer("dw", 32, 32, 3, input_size=16, padding=1, groups=32)
    dil = ConvLayer("dil", 8, 8, 3, input_size=16, padding=2, dilation=2)
    with pytest.raises(ConfigError) as err:
        neurosim_rows(Network("n", (dw, dil)))
    assert "dw: groups=32" in str(err.value) and "dil: dilation (2, 2)" in str(err.value)
    rows = neurosim_rows(Network("n", (ConvLayer("g", 8, 16, 3, input_size=10, padding=1, groups=4),
                                       ConvLayer("c", 16, 16, 3, input_size=5, padding=1))),
                         "padded", groups="expand").rows
    assert [r.values for r in rows] == [(12, 12, 2, 3, 3, 4, 0, 1)] * 3 + [(12, 12, 2, 3, 3, 4, 1, 1),
                                                                           (7, 7, 16, 3, 3, 16, 0, 1)]
    assert [r.layer for r in rows][:2] == ["g[g0]", "g[g1]"]
    with pytest.raises(ConfigError, match="one stride"):
        neurosim_rows(Network("n", (ConvLayer("s", 3, 3, 3, input_size=9, stride=(2, 1)),)))


@pytest.mark.parametrize("text, words", [
    ("", ["no layer rows", "empty"]),
    ("\n\n", ["no layer rows"]),
    ("32,32,3,3,3,16,0,1\n16,16,16,3,3\n", ["line 2", "expected 8", "got 5"]),        # truncated
    ("32,32,3,3,3,16,0,1,7,9\n", ["line 1", "got 10"]),                               # too many
    ("32,32,3,3,3,16,0,1\n32,-32,3,3,3,16,0,1\n", ["line 2", "IFM_W", ">= 1", "-32"]),  # negative
    ("32,32,3,3,x,16,0,1\n", ["line 1", "field Kw", "'x'"]),                          # non-numeric
    ("32,32,3.5,3,3,16,0,1\n", ["line 1", "field IC", "'3.5'"]),
    ("32,32,3,3,3,16,2,1\n", ["line 1", "pool_flag", "0 or 1", "2"]),
    ("32,32,3,3,3,16,0,0\n", ["line 1", "stride", ">= 1"]),
    ("# comment\n4,4,3,7,7,16,0,1\n", ["line 2", "kernel extent 7"]),
])
def test_malformed_rows_name_line_and_field(tmp_path, text, words):
    path = tmp_path / "NetWork.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        load_network(str(path))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_binary_csv_is_a_format_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(FormatError, match="not a text file"):
        load_network(str(path))


# --- trace files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    ConvLayer("c3", 4, 5, 3, input_size=(7, 6), padding=1),
    ConvLayer("s2", 3, 6, (3, 2), input_size=(10, 9), stride=2, padding=(1, 0)),
    ConvLayer("fc", 20, 7, 1, kind="linear"),
])
def test_trace_encodes_the_real_convolution(layer):
    trace = random_trace(layer, seed=3, weight_bits=6, input_bits=5)
    oc, ic = layer.out_channels, layer.in_channels
    w = trace.weight_matrix.T.reshape(oc, ic, layer.Kh, layer.Kw)  # undo weight.reshape(OC,-1).T
    x_cols = trace.input_columns
    # Ground truth: torch conv2d on the same integers (rebuild x from the trace's own generator).
    rng = np.random.default_rng(3)
    w_ref = rng.integers(-31, 32, size=(oc, ic, layer.Kh, layer.Kw))
    x_ref = rng.integers(0, 16, size=(ic, *layer.input_size))
    assert np.array_equal(w, w_ref)
    assert np.array_equal(trace.weight_matrix, w_ref.reshape(oc, -1).T)
    y = torch.nn.functional.conv2d(torch.tensor(x_ref[None], dtype=torch.float64),
                                   torch.tensor(w_ref, dtype=torch.float64), stride=layer.stride,
                                   padding=layer.padding, dilation=layer.dilation)[0]
    assert np.array_equal(trace.expected_output(), y.reshape(oc, -1).numpy().astype(np.int64))
    # The bit matrix decodes back to the unfolded input (two's complement, MSB first).
    bits = trace.bit_matrix.reshape(x_cols.shape[0], x_cols.shape[1], 5)
    value = -bits[..., 0] * 16 + (bits[..., 1:] * np.array([8, 4, 2, 1])).sum(-1)
    assert np.array_equal(value, x_cols)


def test_trace_files_and_command():
    layer = ConvLayer("layer1.0.conv1", 16, 64, 3, input_size=5, padding=1)
    trace = random_trace(layer, seed=1, weight_bits=4, input_bits=4)
    files = trace.files()
    assert files["NetWork_layer1.0.conv1.csv"] == b"7,7,16,3,3,64,0,1\r\n"   # padded: 25 windows = 25 columns
    weights = np.loadtxt(files["weight_layer1.0.conv1.csv"].decode().splitlines(), delimiter=",")
    assert weights.shape == (144, 64) and np.array_equal(weights * 8, trace.weight_matrix)
    bits = np.loadtxt(files["input_layer1.0.conv1.csv"].decode().splitlines(), delimiter=",")
    assert bits.shape == (144, 25 * 4) and np.array_equal(bits, trace.bit_matrix)
    assert trace.command(version="1.3") == ("./NeuroSIM/main NetWork_layer1.0.conv1.csv 4 4 "
                                            "weight_layer1.0.conv1.csv input_layer1.0.conv1.csv")
    assert trace.command().split()[2:6] == ["4", "4", "128", "128"]   # V1.4 (default), its driver's 128 128
    script = files["trace_command_layer1.0.conv1.sh"].decode()
    assert script.splitlines()[-1] == "exec " + trace.command(neurosim="$NEUROSIM")


def test_stride_whose_window_count_neurosim_gets_wrong_is_refused():
    # padded 11 x 9, kernel 3 x 2, stride 2: NeuroSim counts int(4.5 * 4) = 18 windows, the layer has 20
    with pytest.raises(ConfigError, match="20 windows.*read 18"):
        random_trace(ConvLayer("s2", 3, 6, (3, 2), input_size=9, stride=2, padding=(1, 0)))


def test_unfold_matches_torch_unfold_with_dilation_and_stride():
    layer = ConvLayer("d", 3, 1, (3, 2), input_size=(11, 9), stride=(2, 1), padding=(2, 1), dilation=(2, 3))
    x = np.arange(3 * 11 * 9).reshape(3, 11, 9)
    ref = torch.nn.functional.unfold(torch.tensor(x[None], dtype=torch.float64), (3, 2), dilation=(2, 3),
                                     padding=(2, 1), stride=(2, 1))[0].numpy().astype(np.int64)
    assert np.array_equal(unfold_input(layer, x), ref)


def test_trace_refuses_what_network_csv_cannot_hold():
    with pytest.raises(ConfigError, match="dilation"):
        random_trace(ConvLayer("dil", 2, 3, 3, input_size=10, dilation=2, padding=2))
    with pytest.raises(ConfigError, match="groups=1"):
        random_trace(ConvLayer("g", 2, 2, 3, input_size=10, groups=2))


def test_trace_input_validation():
    layer = ConvLayer("c", 2, 2, 1, input_size=2)
    with pytest.raises(ConfigError, match="weights must lie"):
        neurosim_trace(layer, np.full((2, 2, 1, 1), 9), np.zeros((2, 2, 2), int), weight_bits=4)
    with pytest.raises(ConfigError, match="input must have shape"):
        neurosim_trace(layer, np.zeros((2, 2, 1, 1), int), np.zeros((3, 2, 2), int))
    with pytest.raises(ConfigError, match=r"input values must lie in \[-4, 3\]"):
        input_bit_matrix(np.array([[4]]), 3)
