"""Every experiment script and benchmark that produces a README table runs in smoke mode (tiny data,
seconds) here, writes its table through imcflow.report.results, and the README's included copies
equal the files the scripts wrote (issue 13, item 1)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from imcflow.report.results import parse_results, readme_blocks, results_text, sync_readme

ROOT = Path(__file__).resolve().parents[1]
# Script -> the name of its results file in smoke mode (None: prints its table only).
TABLE_SCRIPTS = {"scripts/exp_lowrank.py": "exp_lowrank.md", "scripts/exp_vwc_sdk.py": "exp_vwc_sdk.md",
                 "scripts/exp_sim_accuracy.py": "exp_sim_accuracy.md", "benchmarks/bench_train.py": None}
NO_TABLE = {"scripts/sync_readme_results.py": "copies tables, makes none",
            "scripts/extract_neurosim_reference.py": "turns NeuroSim logs into a test CSV, no table",
            "scripts/calibrate_neurosim.py": "fits preset constants to that CSV, no README table"}


def _load(rel: str):
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_is_covered():
    found = {str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.py")}
    assert found == {s for s in TABLE_SCRIPTS if s.startswith("scripts/")} | set(NO_TABLE)


@pytest.mark.parametrize("rel", sorted(TABLE_SCRIPTS))
def test_script_smoke_mode_writes_its_table(rel, tmp_path, capsys):
    threads = torch.get_num_threads()
    module = _load(rel)
    name = TABLE_SCRIPTS[rel]
    out_arg = tmp_path if name is not None else tmp_path / "bench.json"
    try:
        assert module.main(["--smoke", "--out", str(out_arg)]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    if name is None:  # the benchmark: a table on stdout, one row per arm, raw seconds as JSON
        assert out.startswith("| arm |") and "| plain |" in out and "overhead" in out
        raw = json.loads(out_arg.read_text())
        assert set(raw["seconds"]) >= {"plain", "imcflow", "imcflow+quant"}
        assert all(r == 1.0 for r in raw["ratio_to_plain"]["plain"])
        return
    text = (tmp_path / name).read_text()
    assert text in out  # printed as written
    parsed = parse_results(text)
    assert parsed.command == f"python {rel} --smoke --out {tmp_path}" and parsed.commit
    expected = (module.columns([module.parse_array("128x128")]) if hasattr(module, "columns")
                else module.COLUMNS)
    assert list(parsed.columns) == expected and parsed.rows
    assert json.loads((tmp_path / "results.json").read_text())["rows"]


def test_readme_blocks_equal_their_files_and_script_format(tmp_path):
    readme = (ROOT / "README.md").read_text()
    for path, body in readme_blocks(readme).items():
        text = (ROOT / path).read_text()
        assert body == text, f"README block of {path} differs: run scripts/sync_readme_results.py"
        parsed = parse_results(text)
        script = parsed.command.split()[1]
        assert script in TABLE_SCRIPTS, f"{path} was not written by a table script: {parsed.command}"
    # The sync itself: a stale block is replaced by its file, verbatim, and reported.
    (tmp_path / "r.md").write_text(results_text("| a |\n|---|\n| 2 |\n", "python x.py", "abc"))
    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- results: r.md -->\nold\n<!-- end results -->\nend\n")
    assert sync_readme(doc) == ["r.md"] and sync_readme(doc) == []
    assert readme_blocks(doc.read_text()) == {"r.md": (tmp_path / "r.md").read_text()}
