"""Sweeps: spec validation, expansion and sampling, the content-addressed cache, resume after a kill,
a trained point beside analytic ones, and the CLI."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imcflow.cli import main
from imcflow.errors import ConfigError
from imcflow.sweep import OUTPUT_COLUMNS, load_spec, run_sweep, spec_from_dict
from imcflow.sweep.spec import grid_indices, random_indices

SRC = str(Path(__file__).resolve().parents[1] / "src")

BASE = {"name": "t", "axes": {"model": "resnet18-paper", "array": ["64x64", "128x128"],
                              "cell_bits": [1, 2], "weight_bits": 8, "adc_bits": [6, 8],
                              "mapping": ["im2col", "flex", "opt-energy"], "geometry": "paper"}}


def _spec(**axes):
    d = json.loads(json.dumps(BASE))
    d["axes"].update(axes)
    return d


@pytest.mark.parametrize("change,message", [
    ({"axes": {"array": ["64x64"]}}, "axes.model is required"),
    ({"axes": {**BASE["axes"], "colour": [1]}}, "unknown axis colour; allowed: model, array"),
    ({"axes": {**BASE["axes"], "mapping": ["vwsdk", "zigzag"]}},
     "axes.mapping: unknown mapping 'zigzag'; allowed: "),
    ({"axes": {**BASE["axes"], "adc_bits": [0]}}, "axes.adc_bits: adc_bits must be in [1, 32], got 0"),
    ({"axes": {**BASE["axes"], "mode": ["fast"]}}, "axes.mode: 'fast' is not allowed; allowed: preloaded"),
    ({"axes": {**BASE["axes"], "cell_bits": []}}, "axes.cell_bits is empty"),
    ({"axes": {**BASE["axes"], "compression": [{"method": "shrink"}]}},
     "unknown compression method 'shrink'; allowed: none"),
    ({"sampling": {"method": "annealing"}},
     "sampling.method 'annealing' is not allowed; allowed: grid, random, evolutionary"),
    ({"sampling": {"method": "random"}}, "sampling.points is required for random sampling"),
    ({"sampling": {"method": "evolutionary", "objective": "speed"}},
     "sampling.objective 'speed' is not a numeric result column"),
    ({"training": {"epoch": 1}}, "unknown training key(s) epoch; allowed: data, epochs"),
    ({"extra": 1}, "unknown key(s) extra; allowed: name, axes, sampling, training"),
])
def test_spec_errors_name_the_field_and_the_allowed_values(change, message):
    d = {**json.loads(json.dumps(BASE)), **change}
    with pytest.raises(ConfigError) as exc:
        spec_from_dict(d)
    assert message in str(exc.value)


def test_expansion_is_the_cartesian_product_with_preset_defaults(tmp_path):
    spec = spec_from_dict(_spec(input_bits=None))
    assert spec.size == 2 * 2 * 2 * 3
    points = [spec.point(i) for i in grid_indices(spec)]
    assert len({json.dumps(p, sort_keys=True) for p in points}) == spec.size
    assert all(p["input_bits"] == 16 and p["preset"] == "isaac" for p in points)  # isaac's default
    path = tmp_path / "s.json"
    path.write_text(json.dumps(_spec()))
    assert load_spec(str(path)).axes == spec.axes


def test_random_sampling_is_seeded_and_distinct():
    spec = spec_from_dict(_spec(array=["64x64", "128x128", "256x256", "512x512"]))
    a, b = random_indices(spec, 10, seed=3), random_indices(spec, 10, seed=3)
    assert a == b and len(set(a)) == 10
    assert random_indices(spec, 10, seed=4) != a
    assert len(random_indices(spec, 10_000, seed=0)) == spec.size


def test_grid_sweep_caches_every_point_and_changes_recompute_only_new_points(tmp_path):
    spec = spec_from_dict(_spec())
    first = run_sweep(spec, str(tmp_path / "a"), workers=1, progress=False)
    assert (first.computed, first.cached) == (spec.size, 0)
    frame = pd.read_csv(tmp_path / "a" / "results.csv")
    assert len(frame) == spec.size and set(OUTPUT_COLUMNS) <= set(frame.columns)
    assert pd.read_parquet(tmp_path / "a" / "results.parquet").shape == frame.shape
    # The published VW-SDK cycles of ResNet-18 on 512x512 1-bit arrays come out of the table too.
    again = run_sweep(spec, str(tmp_path / "a"), workers=1, progress=False)
    assert (again.computed, again.cached) == (0, spec.size)
    assert again.to_frame().equals(first.to_frame())
    bigger = spec_from_dict(_spec(adc_bits=[6, 7, 8]))
    with pytest.raises(ConfigError, match="holds another sweep"):
        run_sweep(bigger, str(tmp_path / "a"), workers=1, progress=False)
    more = run_sweep(bigger, str(tmp_path / "b"), workers=1, progress=False,
                     cache_dir=str(tmp_path / "a" / "cache"))
    assert (more.computed, more.cached) == (spec.size // 2, spec.size)


def test_published_cycles_from_a_sweep(tmp_path):
    spec = spec_from_dict({"axes": {"model": "resnet18-paper", "array": "512x512", "cell_bits": 1,
                                    "weight_bits": 1, "mapping": ["sdk", "vwsdk"], "geometry": "paper"}})
    frame = run_sweep(spec, str(tmp_path), workers=1, progress=False).to_frame()
    assert dict(zip(frame["mapping"], frame["cycles"], strict=True)) == {"sdk": 7240, "vwsdk": 4294}


def test_evolutionary_sampling_is_seeded_and_improves_on_its_first_generation(tmp_path):
    axes = {**BASE["axes"], "array": ["32x32", "64x64", "128x128", "256x256", "512x512"],
            "adc_bits": [4, 5, 6, 7, 8], "mapping": ["im2col", "sdk", "vwsdk", "flex"]}
    d = {"axes": axes, "sampling": {"method": "evolutionary", "population": 6, "generations": 3,
                                    "seed": 1, "objective": "energy_j"}}
    one = run_sweep(spec_from_dict(d), str(tmp_path / "a"), workers=1, progress=False)
    two = run_sweep(spec_from_dict(d), str(tmp_path / "b"), workers=1, progress=False)
    assert one.to_frame().equals(two.to_frame())
    keys = [r["key"] for r in one.rows]
    assert len(keys) == len(set(keys)) and 6 < len(keys) <= 18
    energies = [r["energy_j"] for r in one.rows]
    assert min(energies[6:]) <= min(energies[:6])


def test_trained_and_analytic_points_in_one_sweep(tmp_path):
    d = {"axes": {"model": "smallcnn-8", "array": "64x64", "weight_bits": 4, "cell_bits": 2,
                  "mapping": ["vwsdk", "opt-energy"],
                  "compression": ["none", {"method": "magnitude", "options": {"sparsity": 0.5}}]},
         "training": {"data": "digits", "epochs": 1, "finetune_epochs": 1, "batch_size": 64}}
    result = run_sweep(spec_from_dict(d), str(tmp_path), workers=2, progress=False)
    frame = result.to_frame()
    trained = frame[frame["kind"] == "trained"]
    analytic = frame[frame["kind"] == "analytic"]
    assert len(trained) == len(analytic) == 2
    assert trained["accuracy"].between(0.3, 1.0).all()  # digits, one epoch: well above chance
    assert (trained["nonzero_weights"] < trained["weights"]).all()
    assert analytic["accuracy"].isna().all() and (analytic["energy_j"] > 0).all()
    assert json.loads(trained["training"].iloc[0])["data"] == "digits"


SLOW_SPEC = {"name": "resume",
             "axes": {"model": "resnet18-paper", "array": ["64x64", "96x96", "128x128", "256x256"],
                      "cell_bits": [1, 2], "weight_bits": 8, "adc_bits": [4, 6, 8],
                      "input_bits": [4, 8], "mapping": ["opt-energy", "opt-edp", "opt-arrays"],
                      "geometry": "paper"}}


def _cached(out: Path) -> int:
    # Finished entries only: a process killed mid-write may leave its temporary file behind.
    return sum(len(re.findall(r"^[0-9a-f]{64}\.json$", "\n".join(files), re.M))
               for _, _, files in os.walk(out / "cache"))


def test_a_killed_sweep_resumes_losing_and_recomputing_nothing(tmp_path):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump(SLOW_SPEC))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "imcflow.cli", "sweep", str(spec_file), "--out", str(out),
           "--workers", "1", "--chunk", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _cached(out) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _cached(out)
    total = spec_from_dict(SLOW_SPEC).size
    assert 5 <= before < total, "the sweep should have been interrupted mid-way"
    assert not (out / "results.csv").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{total} points ({total - before} computed, {before} cached)" in done.stderr
    resumed = pd.read_csv(out / "results.csv")
    fresh = run_sweep(spec_from_dict(SLOW_SPEC), str(tmp_path / "fresh"), workers=1,
                      progress=False)
    pd.testing.assert_frame_equal(resumed, pd.read_csv(tmp_path / "fresh" / "results.csv"))
    assert fresh.computed == total


def test_sweep_cli_with_objective_and_a_bad_spec(tmp_path, capsys):
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(mapping=["flex"])))
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "o"), "--objective", "edp",
                 "--workers", "1", "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "o" / "results.csv")
    assert sorted(set(frame["mapping"])) == ["flex", "opt-edp"]
    assert "sweep t: 16 points (16 computed, 0 cached)" in capsys.readouterr().err
    assert "points/s" in (tmp_path / "o" / "sweep.log").read_text()
    spec_file.write_text("axes: {model: resnet18, array: [12y12]}")
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "p")]) == 2
    assert "12y12" in capsys.readouterr().err
