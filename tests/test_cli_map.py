"""``imcflow map`` through its entry point: exit codes, formats and errors."""
import json

import pytest

from imcflow.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_has_every_method_totals_and_speedups(capsys):
    code, out, _ = run(capsys, "map", "resnet18-paper", "--array", "512x512", "--detail")
    assert code == 0
    for text in ("im2col cycles", "SDK cycles", "VW-SDK cycles", "flex cycles", "10x8x3x64",
                 "Network totals", "SDK/VW-SDK = 1.686x", "cycles/LB", "im2col window"):
        assert text in out


def test_json_schema(capsys, tmp_path):
    out_file = tmp_path / "m.json"
    code, _, err = run(capsys, "map", "--layer", "56,56,3,3,64,64,1,1", "--layer", "7,7,1,1,32,10",
                       "--format", "json", "--out", str(out_file))
    assert code == 0 and "wrote" in err
    doc = json.loads(out_file.read_text())
    assert set(doc) >= {"array", "options", "layers", "totals"}
    layer = doc["layers"][0]
    for key in ("name", "H", "W", "IC", "OC", "Kh", "Kw", "stride", "padding", "groups"):
        assert key in layer
    for method in ("im2col", "sdk", "vwsdk", "flex"):
        m = layer[method]
        assert set(m) >= {"cycles", "window", "row_tiles", "col_tiles", "arrays", "tile_utilization",
                          "avg_utilization", "lower_bound"}
        assert set(m["window"]) == {"a", "b", "ict", "oct", "pw_h", "pw_w"}
        assert m["cycles"] >= m["lower_bound"]
    assert layer["vwsdk"]["cycles"] <= layer["im2col"]["cycles"]
    assert doc["totals"]["im2col"]["cycles"] == sum(l["im2col"]["cycles"] for l in doc["layers"])


def test_csv_and_single_method(capsys):
    code, out, _ = run(capsys, "map", "vgg13-paper", "--method", "vwsdk", "--format", "csv",
                       "--search", "paper")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("layer,method,best") and len(lines) == 11
    assert sum(int(l.split(",")[lines[0].split(",").index("cycles")]) for l in lines[1:]) == 77102


@pytest.mark.parametrize("argv, message", [
    (["map", "no-such-net"], "unknown network 'no-such-net'; built-in: "),
    (["map", "--layer", "3,3,5,5,1,1"], "kernel extent 5 along H is larger than the padded input"),
    (["map", "--layer", "8,8,3,3,0,4"], "in_channels must be >= 1, got 0"),
    (["map", "resnet18-paper", "--array", "64"], "ROWSxCOLS"),
    (["map", "resnet18-paper", "--method", "magic"], "--method 'magic' is unknown"),
    (["map", "resnet18-paper", "--array", "64x2", "--weight-bits", "8"], "C' = 0"),
    (["map"], "no network given"),
])
def test_bad_input_is_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_closed_pipe_is_not_a_traceback():
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m imcflow.cli map vgg13-paper | head -1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("vgg13-paper on 512x512")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
