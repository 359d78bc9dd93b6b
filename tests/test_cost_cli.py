"""``imcflow cost`` and ``imcflow presets``: outputs, files and exit codes."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from imcflow.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cost_json_shape(tmp_path, capsys):
    out = tmp_path / "cost.json"
    code, _, err = run(capsys, "cost", "resnet18-paper", "--array", "256x256", "--preset", "isaac",
                       "--format", "json", "--out", str(out))
    assert code == 0 and "wrote" in err
    doc = json.loads(out.read_text())
    assert list(doc["methods"]) == ["flex"] and [r["method"] for r in doc["comparison"]] == ["flex"]
    d = doc["methods"]["flex"]
    assert d["preset"] == "isaac" and d["method"] == "flex" and d["array"] == "256x256"
    assert (d["weight_bits"], d["cell_bits"], d["input_bits"]) == (16, 2, 16)  # the preset's defaults
    assert len(d["layers"]) == 5
    for rec in [d["totals"], *d["layers"]]:
        for key in ("energy_j", "latency_s", "area_mm2", "energy_breakdown_j", "edp_js", "tops_per_w",
                    "tops_per_mm2"):
            assert key in rec
        assert math.isclose(sum(rec["energy_breakdown_j"].values()), rec["energy_j"], rel_tol=1e-12)
    assert math.isclose(sum(l["energy_j"] for l in d["layers"]), d["totals"]["energy_j"], rel_tol=1e-12)
    assert d["cycles"] == sum(l["counts"]["activations"] for l in d["layers"])


def test_cost_all_methods_table_and_plots(tmp_path, capsys):
    code, out, err = run(capsys, "cost", "resnet18-paper", "--array", "512x512", "--weight-bits", "1",
                         "--cell-bits", "1", "--method", "all", "--plot", str(tmp_path / "plots"))
    assert code == 0
    assert "Totals per method" in out and "TOTAL" in out
    for m in ("im2col", "sdk", "vwsdk", "flex"):
        assert m in out
        png = tmp_path / "plots" / f"energy_breakdown_{m}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plots" / "methods.png").stat().st_size > 1000


def test_cost_csv_and_overrides(tmp_path, capsys):
    path = tmp_path / "c.csv"
    base = ["cost", "--layer", "16,16,3,3,16,32", "--array", "128x128", "--format", "csv"]
    assert run(capsys, *base, "--out", str(path))[0] == 0
    lo = pd.read_csv(path)
    assert run(capsys, *base, "--out", str(path), "--set", "adc.bits=6")[0] == 0
    six = pd.read_csv(path)
    assert list(lo["layer"]) == ["layer1", "TOTAL"]
    assert six["energy_adc_j"].iloc[-1] == pytest.approx(lo["energy_adc_j"].iloc[-1] / 4)
    assert (lo["mode"] == "preloaded").all()


def test_cost_sram_preset_unknown_area(capsys):
    code, out, _ = run(capsys, "cost", "resnet18-paper", "--preset", "sram-dong2020",
                       "--mode", "time-multiplexed", "--input-bits", "8")
    assert code == 0 and "area" in out and "8-bit inputs" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "adc.bits=-1"], "adc.bits"),
    (["--set", "adc.speed=3"], "adc.speed"),
    (["--preset", "nope"], "unknown preset"),
    (["--method", "magic"], "magic"),
    (["--input-bits", "0"], "input_bits"),
])
def test_cost_errors_exit_2(capsys, argv, fragment):
    code, out, err = run(capsys, "cost", "resnet18-paper", *argv)
    assert code == 2 and fragment in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_presets_command(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0 and "isaac" in out and "sram-dong2020" in out
    code, out, _ = run(capsys, "presets", "isaac", "--format", "json")
    d = json.loads(out)
    assert d["adc"]["bits"] == {"value": 8, "source": "ISAAC Table 1: ADC resolution 8 bits"}
    code, out, _ = run(capsys, "presets", "isaac", "--set", "adc.bits=6")
    assert code == 0 and "override: adc.bits=6" in out
