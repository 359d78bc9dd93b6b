"""The compression pipeline on a small model and synthetic data: cached baseline, rounds, the
accuracy-drop rule, resume after an interruption, the report and the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from imcflow.cli import main
from imcflow.compress import CompressionMethod, StepResult
from imcflow.compress.pipeline import CompressConfig, run_compression
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec

ARRAY = ArraySpec(64, 64, weight_bits=2)  # smallcnn-8 on 3x8x8 leaves one VWC-SDK round on 64 rows


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _config(tmp_path, method: str, run: str = "run", **kw) -> CompressConfig:
    base = dict(model="smallcnn-8", data="synthetic", method=method, array=ARRAY, epochs=2,
                finetune_epochs=1, batch_size=64, out_dir=str(tmp_path / run),
                baseline_dir=str(tmp_path / "baselines"), device="cpu")
    base.update(kw)
    return CompressConfig(**base)


def test_trivial_method_reports_the_baseline(tmp_path):
    report = run_compression(_config(tmp_path, "none"), progress=False)
    assert report.rounds == ()
    assert report.compressed_accuracy == report.baseline_accuracy > 0.5
    for m in ("im2col", "sdk", "vwsdk", "flex", "best"):
        assert report.compressed.summary(m) == report.baseline.summary(m)
    assert all(l.quantized for l in report.compressed.layers)  # 2-bit uniform weights, trained in
    for l in report.compressed.layers:
        assert set(map(int, set(l.weight.ravel().tolist()))) <= {-1, 0, 1}
    data = json.loads((tmp_path / "run" / "report.json").read_text())
    assert data["baseline"]["mapping"]["vwsdk"]["cycles"] == report.baseline.summary("vwsdk").cycles
    # Energy from the cost model (ISAAC preset by default), on the deployed (same) network.
    from imcflow.cost import CostSettings, cost_mapping
    from imcflow.hardware.preset import load_preset

    expected = cost_mapping(report.baseline.mapping, "vwsdk", CostSettings(load_preset("isaac"))).totals
    assert data["baseline"]["mapping"]["vwsdk"]["energy_j"] == pytest.approx(expected.energy_j)
    assert report.compressed.energy_j("vwsdk") == pytest.approx(expected.energy_j)
    # A second run (another method, same baseline settings) reuses the cached baseline.
    again = run_compression(_config(tmp_path, "none", run="run2"), progress=False)
    assert again.seconds["baseline_training"] == 0.0
    assert again.baseline_accuracy == report.baseline_accuracy


def test_vwc_sdk_round_and_resume_after_interruption(tmp_path):
    full = run_compression(_config(tmp_path, "vwc-sdk", max_drop=100.0), progress=False)
    assert [r.accepted for r in full.rounds] == [True]
    assert full.compressed.summary("vwsdk").cycles < full.baseline.summary("vwsdk").cycles
    assert full.compressed.parameters < full.baseline.parameters
    assert full.compressed.energy_j("vwsdk") < full.baseline.energy_j("vwsdk")

    class Interrupt(Exception):
        pass

    def stop(_record):
        raise Interrupt

    cfg = _config(tmp_path, "vwc-sdk", run="interrupted", max_drop=100.0)
    with pytest.raises(Interrupt):
        run_compression(cfg, progress=False, on_round=stop)
    # The interrupted run is not restarted (nor overwritten) by accident: resuming is asked for.
    with pytest.raises(ConfigError, match="already holds a run"):
        run_compression(cfg, progress=False)
    resumed = run_compression(cfg, progress=False, resume=True)
    assert len(resumed.rounds) == 1
    assert resumed.compressed_accuracy == full.compressed_accuracy
    assert [l.layer for l in resumed.compressed.layers] == [l.layer for l in full.compressed.layers]
    assert all((a.weight == b.weight).all()
               for a, b in zip(resumed.compressed.layers, full.compressed.layers, strict=True))
    # Other settings in the same folder are refused rather than mixed.
    with pytest.raises(ConfigError, match="other settings"):
        run_compression(_config(tmp_path, "vwc-sdk", run="interrupted", max_drop=5.0), progress=False,
                        resume=True)


class _ZeroEverything(CompressionMethod):
    """Masks every weight to zero: accuracy falls to chance, so the round must be discarded."""

    name = "test-zero"
    description = "test only"
    iterative = True

    def apply(self, model, ctx):
        for m in model.modules():
            if hasattr(m, "set_mask"):
                m.set_mask(torch.zeros_like(m.weight))
        return StepResult(True, model, {})


def test_accuracy_drop_rule_discards_the_round(tmp_path):
    from imcflow.compress.base import METHODS

    with METHODS.override("test-zero", _ZeroEverything()):
        report = run_compression(_config(tmp_path, "test-zero"), progress=False)
    assert len(report.rounds) == 1 and not report.rounds[0].accepted
    assert report.rounds[0].accuracy < report.baseline_accuracy - 0.01
    assert report.compressed_accuracy == report.baseline_accuracy
    assert report.compressed.nonzero_weights == report.baseline.nonzero_weights


def test_compress_cli_end_to_end(tmp_path, capsys):
    rc = main(["compress", "smallcnn-8", "--method", "vwc-sdk", "--data", "synthetic", "--array", "64x64",
               "--weight-bits", "2", "--epochs", "2", "--finetune-epochs", "1", "--max-drop", "100",
               "--out", str(tmp_path / "cli"), "--quiet", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "compressed" in out and "vwsdk" in out and "rounds" in out
    data = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert set(data) >= {"baseline", "compressed", "speedup", "rounds", "seconds", "accuracy_drop_pct"}
    assert data["speedup"]["vwsdk"] > 1
    assert {"accuracy", "parameters", "mapping", "layers"} <= set(data["compressed"])
