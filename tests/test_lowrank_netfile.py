"""A decomposed network written as a plain network file maps the same as the in-memory one."""
import pytest

from imcflow import ArraySpec, ConvLayer, Network, map_network
from imcflow.errors import FormatError
from imcflow.frontends.netfile import network_to_yaml, parse_network_document, read_network_file
from imcflow.mapping.lowrank import LowRankLayer


def test_lowrank_round_trip_and_identical_mapping(tmp_path):
    conv = ConvLayer("c2", 32, 32, 3, input_size=32, padding=1)
    net = Network("n", (ConvLayer("c1", 16, 32, 3, input_size=32, padding=1),
                        LowRankLayer.from_conv(conv, 8, 2, "input", "sum")))
    path = tmp_path / "n.yaml"
    path.write_text(network_to_yaml(net))
    back = read_network_file(str(path))
    assert back.layers[1].to_dict() == net.layers[1].to_dict()
    a, b = map_network(net, ArraySpec(128, 128)), map_network(back, ArraySpec(128, 128))
    assert [r["vwsdk"].cycles for r in a.layers] == [r["vwsdk"].cycles for r in b.layers]


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "kind": "lowrank", "out_channels": 8, "kernel_size": 3}, "field 'rank' is required"),
    ({"name": "x", "rank": 2, "out_channels": 8, "kernel_size": 3}, "only apply to kind: lowrank"),
    ({"name": "x", "kind": "lowrank", "rank": 0, "out_channels": 8, "kernel_size": 3}, "rank must be >= 1"),
])
def test_lowrank_entry_errors_name_the_field(entry, message):
    with pytest.raises(FormatError, match=message):
        parse_network_document({"input": [8, 16, 16], "layers": [entry]}, source="f.yaml")
