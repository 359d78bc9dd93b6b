"""Issue 13, items 3 and 5: a held-out validation split drives the stopping rules, fine-tuning stops
on a plateau or at its budget, several seeds give a mean and a spread, the drop rule is for iterative
methods only, the report separates compression zeros from quantization zeros, headers follow --quant
and the best mapping has an energy."""
from __future__ import annotations

import json

import pytest
import torch

import test_compress_pipeline as pipeline_tests
from imcflow.cli import main
from imcflow.compress.pipeline import CompressConfig, run_compression
from imcflow.compress.seeds import compare_arms, run_compression_seeds, run_seeds, spread
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.models import create_model
from imcflow.train import Plateau, TrainConfig, fit, load_dataset, split_validation

ARRAY = ArraySpec(64, 64, weight_bits=2)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_validation_split_is_seeded_disjoint_and_from_training_data():
    data = load_dataset("synthetic", "train", subset=200, seed=0)
    train, val = split_validation(data, 0.25, seed=3)
    assert (len(train), len(val)) == (150, 50) and val.split == "val"
    rows = {tuple(x.flatten()[:16].tolist()) for x in data.images}
    got = [tuple(x.flatten()[:16].tolist()) for x in torch.cat([train.images, val.images])]
    assert set(got) == rows and len(got) == len(rows)  # a partition of the training images
    again_train, again_val = split_validation(data, 0.25, seed=3)
    assert torch.equal(again_val.images, val.images)
    other = split_validation(data, 0.25, seed=4)[1]
    assert not torch.equal(other.images, val.images)
    assert split_validation(data, 0.0) == (data, None)
    for bad in (-0.1, 1.0, "x"):
        with pytest.raises(ConfigError, match="val_fraction"):
            split_validation(data, bad)


def test_plateau_stops_fit_and_a_resume_does_not_train_further(tmp_path):
    train, val = split_validation(load_dataset("synthetic", subset=128, image_size=8), 0.25)
    model = create_model("smallcnn-8", num_classes=10, in_channels=3)
    # lr so small nothing moves: validation accuracy is flat, so patience 1 stops after 2 epochs.
    cfg = TrainConfig(epochs=6, lr=1e-12, batch_size=32, device="cpu")
    result = fit(model, train, val, cfg, checkpoint_dir=tmp_path, stop=Plateau(1), progress=False)
    assert len(result.history) == 2 and Plateau(1)(result.history)
    assert not Plateau(1)(result.history[:1])
    again = fit(model, train, val, cfg, checkpoint_dir=tmp_path, resume=True, stop=Plateau(1),
                progress=False)
    assert len(again.history) == 2 and again.resumed_from_epoch == 2
    full = fit(create_model("smallcnn-8", num_classes=10, in_channels=3), train, val, cfg,
               stop=Plateau(0), progress=False)
    assert len(full.history) == 6  # patience 0: the whole budget


def _config(tmp_path, method: str, run: str = "run", **kw) -> CompressConfig:
    base = dict(model="smallcnn-8", data="synthetic", method=method, array=ARRAY, epochs=1,
                finetune_epochs=3, patience=1, batch_size=64, out_dir=str(tmp_path / run),
                baseline_dir=str(tmp_path / "baselines"), device="cpu", subset=300, test_subset=100)
    base.update(kw)
    return CompressConfig(**base)


class _ZeroOnce(pipeline_tests._ZeroEverything):
    """Non-iterative: zeroes every weight; the drop rule must not discard it."""

    name = "test-zero-once"
    iterative = False


def test_rule_reads_validation_and_applies_to_iterative_methods_only(tmp_path):
    from imcflow.compress.base import METHODS

    with METHODS.override("test-zero-once", _ZeroOnce()):  # the registry is restored afterwards
        report = run_compression(_config(tmp_path, "test-zero-once"), progress=False)
    (r,) = report.rounds
    assert r.accepted and "non-iterative" in report.rule  # kept although at chance level
    assert report.compressed.nonzero_weights == 0
    assert report.compressed_accuracy == r.test_accuracy and report.compressed_val_accuracy == r.accuracy
    assert 1 <= r.epochs <= 3
    # The validation accuracies come from the held-out split: 30 of the 300 training images.
    train = load_dataset("synthetic", "train", image_size=8, subset=300, seed=0)
    _, val = split_validation(train, 0.1, 0)
    assert len(val) == 30 and round(report.baseline_val_accuracy * 30) == report.baseline_val_accuracy * 30
    vwc = run_compression(_config(tmp_path, "vwc-sdk", run="vwc", max_drop=100.0), progress=False)
    assert "iterative" in vwc.rule and "validation" in vwc.rule


def test_report_separates_compression_and_quantization_zeros_and_best_has_energy(tmp_path):
    from imcflow.cost import CostSettings, cost_mapping
    from imcflow.hardware.preset import load_preset

    report = run_compression(_config(tmp_path, "magnitude", run="mag"), progress=False)
    c = report.compressed
    # magnitude zeroes half of the middle layers; the 2-bit (ternary) quantizer zeroes more.
    assert c.nonzero_weights < c.nonzero_compression < c.weights
    data = json.loads((tmp_path / "mag" / "report.json").read_text())
    assert data["compressed"]["zeroed_by_quantization"] == c.nonzero_compression - c.nonzero_weights
    best = cost_mapping(c.mapping, "best", CostSettings(load_preset("isaac"))).totals.energy_j
    assert c.energy_j("best") == pytest.approx(best) and data["compressed"]["mapping"]["best"]["energy_j"]


def test_headers_follow_quant(tmp_path, capsys):
    common = ["compress", "smallcnn-8", "--method", "none", "--data", "synthetic", "--array", "64x64",
              "--epochs", "1", "--subset", "200", "--test-subset", "50", "--quiet", "--device", "cpu"]
    assert main(common + ["--quant", "none", "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "float weights (--quant none; mapped as 4-bit)" in out and "uniform" not in out.split("\n")[0]
    assert main(common + ["--weight-bits", "2", "--out", str(tmp_path / "t")]) == 0
    assert "2-bit uniform weights (ternary: -1, 0, +1)" in capsys.readouterr().out


def test_run_seeds_reports_mean_and_spread_and_flags_small_differences(tmp_path):
    arm = run_seeds(lambda s: {"acc": 0.9 + 0.01 * s, "cycles": 100.0}, (0, 1, 2), "a")
    assert arm.metrics["acc"].mean == pytest.approx(0.91) and arm.metrics["acc"].std == pytest.approx(0.01)
    assert (arm.metrics["cycles"].std, arm.metrics["acc"].min, arm.metrics["acc"].max) == (0.0, 0.9, 0.92)
    far = compare_arms("a", arm.metrics["acc"], "b", spread([0.5, 0.52, 0.51]))
    assert not far.within_spread and not far.ranges_overlap
    with pytest.raises(ConfigError, match="distinct"):
        run_seeds(lambda s: {"x": 1.0}, (1, 1))
    with pytest.raises(ConfigError, match="differ"):
        run_seeds(lambda s: {"x": 1.0} if s else {"y": 1.0}, (0, 1))
    runs = run_compression_seeds(_config(tmp_path, "none", run="seeds", finetune_epochs=1), (0, 1))
    acc = runs.metrics["test_accuracy"]
    assert len(acc.values) == 2 and acc.min <= acc.mean <= acc.max
    assert (tmp_path / "seeds" / "seed1" / "report.json").is_file()
    assert runs.metrics["cycles_vwsdk"].std == 0.0  # 'none' never changes the shapes
