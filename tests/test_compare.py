"""``imcflow compare`` in smoke mode: arms x seeds through the pipeline, a cycle-matched arm, the
table, the raw JSON and the Pareto plot; a rerun resumes (reads finished runs back); bad files fail
with the key named."""
from __future__ import annotations

import json

import pytest
import torch

from imcflow.cli import main
from imcflow.compress.compare import CompareConfig
from imcflow.errors import ConfigError

CONFIG = """
model: smallcnn-8
data: synthetic
image_size: 8
array: 64x64
weight_bits: 2
epochs: 1
finetune_epochs: 1
subset: 160
test_subset: 40
batch_size: 64
seeds: [0, 1]
arms:
  - name: dense
    method: none
  - name: vwc
    method: vwc-sdk
    options: {max_rounds: 1}
  - name: filter@vwsdk
    method: filter-prune
    match: {arm: vwc, by: cycles, mapping: vwsdk}
"""


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_compare_smoke_and_resume(tmp_path, capsys):
    cfg = tmp_path / "cmp.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["compare", str(cfg), "--out", str(out), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert table == (out / "compare.md").read_text()
    assert table.startswith("| arm | method | matched on |") and "| filter@vwsdk | filter-prune |" in table
    data = json.loads((out / "compare.json").read_text())
    assert (out / "pareto.png").stat().st_size > 1000
    seeds = data["per_seed"]
    for vwc, flt in zip(seeds["vwc"], seeds["filter@vwsdk"], strict=True):
        assert flt["cycles_vwsdk"] <= vwc["cycles_vwsdk"]  # matched per seed, never above
    acc = data["runs"]["dense"]["metrics"]["test_accuracy"]
    assert acc["n"] == 2 and acc["min"] <= acc["mean"] <= acc["max"]
    state = (out / "vwc" / "seed1" / "state.json").read_text()
    assert main(["compare", str(cfg), "--out", str(out), "--quiet"]) == 0  # resumes: reads back
    capsys.readouterr()
    again = json.loads((out / "compare.json").read_text())
    assert again["per_seed"] == seeds
    assert (out / "vwc" / "seed1" / "state.json").read_text() == state  # no round run again
    report = json.loads((out / "vwc" / "seed1" / "report.json").read_text())
    assert report["seconds"]["baseline_training"] == 0.0  # the cached baseline was reused


@pytest.mark.parametrize("patch, message", [
    ({"colour": 1}, "unknown key"),
    ({"arms": [{"name": "f", "method": "filter-prune", "match": {"arm": "x", "by": "cycles"}}]},
     "not listed before it"),
    ({"arms": [{"name": "a", "method": "none"}, {"name": "a", "method": "none"}]}, "distinct names"),
    ({"arms": [{"name": "a", "method": "none", "match": None, "extra": 1}]}, "unknown key"),
])
def test_bad_comparison_files_name_the_problem(patch, message):
    d = {"model": "smallcnn-8", "data": "synthetic", "array": "64x64",
         "arms": [{"name": "a", "method": "none"}]}
    d.update(patch)
    with pytest.raises(ConfigError, match=message):
        CompareConfig.from_dict(d)
