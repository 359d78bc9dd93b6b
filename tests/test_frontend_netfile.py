"""The plain network file (YAML/JSON): hand-written files, defaults, aliases, round trips, bad files."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.errors import FormatError
from imcflow.frontends.netfile import (
    network_document,
    network_to_json,
    network_to_yaml,
    parse_network_document,
    read_network_file,
)
from imcflow.layers import ConvLayer, Network
from imcflow.networks import load_network

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "my_net.yaml")


def test_example_file_matches_hand_built_layers():
    net = load_network(EXAMPLE)
    expected = (
        ConvLayer("conv1", 3, 32, 3, input_size=32, padding=1),
        ConvLayer("conv2", 32, 64, 3, input_size=32, stride=2, padding=1),
        ConvLayer("dw3", 64, 64, 3, input_size=16, padding=2, dilation=2, groups=64),
        ConvLayer("pw3", 64, 128, 1, input_size=16),
        ConvLayer("conv4", 128, 128, (3, 1), input_size=8, padding=(1, 0)),
        ConvLayer("fc", 8192, 10, 1, input_size=1, kind="linear", bias=True),
    )
    assert net.layers == expected
    assert net.name == "my_net" and net.input_shape == (3, 32, 32)
    assert net.meta["format"] == "netfile"


def test_aliases_equal_canonical_fields():
    a = parse_network_document({"layers": [{"name": "c", "H": 14, "W": 7, "IC": 8, "OC": 16,
                                            "Kh": 3, "Kw": 1}]})
    b = parse_network_document({"layers": [{"name": "c", "input_size": [14, 7], "in_channels": 8,
                                            "out_channels": 16, "kernel_size": [3, 1]}]})
    assert a.layers == b.layers
    lin = parse_network_document({"layers": [{"name": "f", "kind": "linear", "in_features": 64,
                                              "out_features": 10}]})
    assert lin.layers[0] == ConvLayer("f", 64, 10, 1, kind="linear")


def test_input_override_and_string_input():
    doc = {"input": "3x16x16", "layers": [{"name": "c", "out_channels": 4, "kernel_size": 3}]}
    assert parse_network_document(doc).layers[0].input_size == (16, 16)


def _random_network(draw) -> Network:
    layers = []
    for i in range(draw(st.integers(1, 5))):
        k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
        d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        g = draw(st.sampled_from([1, 2, 4]))
        h = max(draw(st.integers(1, 20)), d[0] * (k[0] - 1) + 1)
        w = max(draw(st.integers(1, 20)), d[1] * (k[1] - 1) + 1)
        layers.append(ConvLayer(f"l{i}", g * draw(st.integers(1, 8)), g * draw(st.integers(1, 8)), k,
                                input_size=(h, w), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                                padding=p, dilation=d, groups=g, bias=draw(st.booleans())))
    if draw(st.booleans()):
        layers.append(ConvLayer("fc", draw(st.integers(1, 300)), draw(st.integers(1, 50)), 1, kind="linear"))
    return Network("rnd", tuple(layers), input_shape=(layers[0].in_channels, *layers[0].input_size))


@settings(max_examples=40)
@given(data=st.data())
def test_yaml_and_json_round_trip_is_identity(data, tmp_path_factory):
    net = _random_network(data.draw)
    tmp = tmp_path_factory.mktemp("rt")
    for suffix, text in ((".yaml", network_to_yaml(net)), (".json", network_to_json(net))):
        path = tmp / f"net{suffix}"
        path.write_text(text)
        back = read_network_file(str(path))
        assert back.layers == net.layers
        assert back.input_shape == net.input_shape and back.geometry == net.geometry
        assert network_document(back)["layers"] == network_document(net)["layers"]


def test_built_in_model_yaml_round_trip(tmp_path):
    net = load_network("resnet20")
    path = tmp_path / "r20.yaml"
    path.write_text(network_to_yaml(net))
    assert load_network(str(path)).layers == net.layers


@pytest.mark.parametrize("text, words", [
    ("", ["empty"]),
    ("layers: [", ["not valid YAML", "line"]),                                   # truncated
    ("- 1\n- 2\n", ["top level must be a mapping"]),
    ("name: x\n", ["'layers' must be a non-empty list"]),
    ("layers: []\n", ["'layers' must be a non-empty list"]),
    ("layerz: []\n", ["unknown top-level field", "layerz"]),
    ("layers:\n  - {out_channels: 4}\n", ["layer 1", "'name' is required"]),
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, kernel_size: 3, input_size: 8, "
     "strid: 2}\n", ["c1", "unknown field 'strid'"]),
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: four, kernel_size: 3, input_size: 8}\n",
     ["c1", "'out_channels'", "four"]),                                           # non-numeric
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, kernel_size: 3, input_size: 8, "
     "stride: 1.5}\n", ["c1", "'stride'", "1.5"]),
    ("layers:\n  - {name: c1, in_channels: -3, out_channels: 4, kernel_size: 3, input_size: 8}\n",
     ["c1", "in_channels", ">= 1", "-3"]),                                        # negative size
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, kernel_size: 9, input_size: 4}\n",
     ["c1", "kernel extent 9"]),
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, input_size: 8}\n",
     ["c1", "'kernel_size' is required"]),
    ("layers:\n  - {name: c1, out_channels: 4, kernel_size: 3, input_size: 8}\n",
     ["c1", "'in_channels' is required"]),
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, kernel_size: 3, H: 8}\n",
     ["c1", "give both H and W"]),
    ("layers:\n  - {name: c1, in_channels: 3, out_channels: 4, kernel_size: 1, input_size: 8}\n"
     "  - {name: c1, out_channels: 4, kernel_size: 1}\n", ["duplicate layer names", "c1"]),
    ("layers:\n  - {name: c1, kind: lstm, in_channels: 3, out_channels: 4}\n", ["c1", "'kind'", "lstm"]),
])
def test_bad_yaml_files_name_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        load_network(str(path))
    message = str(err.value)
    assert str(path) in message
    for w in words:
        assert w in message, message


@pytest.mark.parametrize("text, words", [
    ("", ["empty"]),
    ('{"layers": [', ["not valid JSON", "line 1"]),
    ('{"layers": [{"name": "a", "in_channels": 3, "out_channels": 4, "kernel_size": "x", "input_size": 8}]}',
     ["'a'", "'kernel_size'"]),
])
def test_bad_json_files_name_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        load_network(str(path))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_binary_file_is_a_format_error(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(FormatError, match="not a text file"):
        load_network(str(path))
