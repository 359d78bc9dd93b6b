"""``imcflow map`` on every entry point and ``imcflow export``; the issue's done-when check:
ResNet-18 maps identically from its name, its ONNX export, its YAML export and its NeuroSim CSV export."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from imcflow.cli import main
from imcflow.networks import load_network

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "my_net.yaml")
METHODS = ("im2col", "sdk", "vwsdk", "flex")


def _mapping(path_or_name: str, out: str) -> dict:
    assert main(["map", path_or_name, "--format", "json", "--out", out]) == 0
    with open(out) as fh:
        return json.load(fh)


def test_resnet18_maps_identically_from_every_entry_point(tmp_path):
    import torch

    torch.set_num_threads(1)
    files = {"onnx": tmp_path / "resnet18.onnx", "yaml": tmp_path / "resnet18.yaml",
             "neurosim": tmp_path / "resnet18.csv"}
    for fmt, path in files.items():
        assert main(["export", "resnet18", "--to", fmt, "--padding", "padded", "--out", str(path)]) == 0
    reference = _mapping("resnet18", str(tmp_path / "ref.json"))
    assert len(reference["layers"]) == 21
    for fmt, path in files.items():
        other = _mapping(str(path), str(tmp_path / f"{fmt}.json"))
        assert len(other["layers"]) == len(reference["layers"]), fmt
        for a, b in zip(reference["layers"], other["layers"], strict=False):  # by layer order, whatever the names
            for method in METHODS:
                assert a[method] == b[method], (fmt, a["name"], method)
            assert a["best"] == b["best"]
        assert other["totals"] == reference["totals"], fmt
        if fmt != "neurosim":  # NetWork.csv holds no names; the others keep torch's module names
            assert [l["name"] for l in other["layers"]] == [l["name"] for l in reference["layers"]]


def test_map_hand_written_yaml(capsys):
    assert main(["map", EXAMPLE, "--method", "vwsdk"]) == 0
    out = capsys.readouterr().out
    assert "my_net" in out
    for name in ("conv1", "conv2", "dw3", "pw3", "conv4", "fc"):
        assert f"\n{name} " in out


def test_export_resnet18_to_neurosim_stdout(capsys):
    assert main(["export", "resnet18", "--to", "neurosim"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert len(rows) == 21
    assert rows[0] == "224,224,3,7,7,64,1,2"        # raw size; the max-pool follows conv1
    assert rows[7] == "56,56,64,1,1,128,0,2"        # layer2.0.downsample.0
    assert rows[-1] == "1,1,512,1,1,1000,0,1"
    assert "NeuroSim counts" in captured.err        # the raw-size window counts differ, and it says so


def test_export_json_round_trip(tmp_path, capsys):
    assert main(["export", "resnet20", "--to", "json"]) == 0
    path = tmp_path / "r20.json"
    path.write_text(capsys.readouterr().out)
    assert load_network(str(path)).layers == load_network("resnet20").layers


def test_export_grouped_model_to_neurosim(tmp_path, capsys):
    assert main(["export", "mobilenetv2", "--to", "neurosim"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imcflow export: error:") and "groups=32" in err and "--groups expand" in err
    assert main(["export", "mobilenetv2", "--to", "neurosim", "--groups", "expand"]) == 0
    rows = capsys.readouterr().out.splitlines()
    net = load_network("mobilenetv2")
    assert len(rows) == sum(l.groups for l in net.layers)


def test_export_trace_files(tmp_path, capsys):
    d = tmp_path / "trace"
    # 16 -> 16 channels in 4-bit weights need a 32-row subarray to fill NeuroSim's hierarchy
    assert main(["export", "resnet20", "--to", "neurosim", "--trace", "layer1.0.conv1", "--trace-dir", str(d),
                 "--weight-bits", "4", "--input-bits", "4", "--padding", "padded", "--sub-array", "32"]) == 0
    assert "trace_command_layer1.0.conv1.sh" in capsys.readouterr().err
    assert (d / "NetWork_layer1.0.conv1.csv").read_bytes() == b"34,34,16,3,3,16,0,1\r\n"
    assert " 4 4 32 128 " in (d / "trace_command_layer1.0.conv1.sh").read_text()   # V1.4 order
    weights = np.loadtxt(d / "weight_layer1.0.conv1.csv", delimiter=",")
    bits = np.loadtxt(d / "input_layer1.0.conv1.csv", delimiter=",")
    assert weights.shape == (3 * 3 * 16, 16) and bits.shape == (3 * 3 * 16, 32 * 32 * 4)
    assert set(np.unique(bits)) <= {0, 1}


@pytest.mark.parametrize("args, words", [
    (["--to", "onnx", "--out", "x.onnx"], ["needs a PyTorch model"]),
    (["--to", "yaml", "--trace", "conv1"], ["--trace", "--to neurosim"]),
])
def test_export_argument_errors(capsys, args, words):
    assert main(["export", EXAMPLE, *args]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


def test_bad_files_exit_2_with_the_location(tmp_path, capsys):
    csv = tmp_path / "net.csv"
    csv.write_text("32,32,3,3,3,16,0,1\n16,16,16,3,three,16,0,1\n")
    assert main(["map", str(csv)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "Kw" in err and "'three'" in err
    fake = tmp_path / "model.onnx"
    fake.write_text("not onnx")
    assert main(["export", str(fake), "--to", "yaml"]) == 2
    assert "not an ONNX model" in capsys.readouterr().err
