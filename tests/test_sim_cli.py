"""``imcflow verify``: exit codes and output."""
from __future__ import annotations

import json

from imcflow.cli import main


def test_verify_passes_on_layers_and_tiny_arrays(capsys):
    rc = main(["verify", "--layer", "9,7,3,2,5,6,2,1", "--layer", "6,6,1,1,8,8,1,0,4",
               "--array", "16x16", "--weight-bits", "4", "--cell-bits", "2", "--input-bits", "3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "PASS: 8/8" in out and "FAIL" not in out


def test_verify_paper_geometry_model(capsys):
    rc = main(["verify", "--layer", "10,10,3,3,4,8", "--geometry", "paper", "--array", "32x8"])
    assert rc == 0


def test_verify_fails_with_coarse_adc_or_noise(capsys):
    rc = main(["verify", "--layer", "8,8,3,3,8,8,1,1", "--array", "64x64", "--weight-bits", "4",
               "--cell-bits", "2", "--adc-bits", "2"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL" in out
    rc = main(["verify", "--layer", "8,8,3,3,8,8,1,1", "--array", "64x64", "--sigma", "0.1",
               "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and not data["passed"] and data["checks"][0]["max_abs_error"] > 0
    assert all(c["activations_ok"] for c in data["checks"])


def test_verify_bad_arguments_exit_2(capsys):
    assert main(["verify", "--layer", "8,8,3,3,8,8", "--adc-bits", "0"]) == 2
    assert "adc_bits" in capsys.readouterr().err
    assert main(["verify", "--layer", "8,8,3,3,8,8", "--method", "nope"]) == 2
    assert main(["verify", "--layer", "8,8,3,3,8,8", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_verify_builtin_model_all_methods(capsys):
    rc = main(["verify", "resnet20", "--array", "128x128", "--method", "vwsdk,flex", "--format", "csv"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("True") >= 44
