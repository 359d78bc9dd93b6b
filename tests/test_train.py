"""The training loop: learning, evaluation, checkpoints and bit-exact resume; the train/eval CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from imcflow.cli import main
from imcflow.errors import ConfigError, DataNotFoundError, FormatError
from imcflow.train import TrainConfig, evaluate, fit, load_checkpoint, load_dataset
from imcflow.train.checkpoint import save_checkpoint

torch.set_num_threads(1)


def tiny_model() -> nn.Module:
    # Batch norm (running stats), dropout (global torch RNG) and momentum: every state resume needs.
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.2),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 10))


@pytest.fixture(scope="module")
def data():
    return (load_dataset("synthetic", "train", image_size=8, subset=300),
            load_dataset("synthetic", "test", image_size=8, subset=100))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CFG = dict(batch_size=32, lr=0.05)


def test_fit_learns_and_evaluate_matches(data):
    train, test = data
    model = tiny_model()
    result = fit(model, train, test, TrainConfig(epochs=3, **CFG), progress=False)
    assert len(result.history) == 3 and result.history[-1].epoch == 3
    assert result.final_test_accuracy > 0.5  # chance is 0.1
    assert result.final_test_accuracy == evaluate(model, test)
    assert result.history[-1].train_loss < result.history[0].train_loss
    frame = result.to_frame()
    assert list(frame["epoch"]) == [1, 2, 3]
    assert json.loads(json.dumps(result.to_dict()))["final_test_accuracy"] == result.final_test_accuracy


def test_evaluate_counts_top1_by_hand():
    # Images are 2 pixels; the "model" predicts the brighter pixel's index.
    x = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.45]]).view(5, 1, 1, 2)
    y = torch.tensor([0, 1, 1, 1, 0])
    model = nn.Sequential(nn.Flatten(), nn.Identity())
    model.register_parameter("dummy", nn.Parameter(torch.zeros(1)))
    assert evaluate(model, TensorDataset(x, y), batch_size=2) == 4 / 5


def test_resume_after_one_epoch_equals_two_epochs(tmp_path, data):
    # Constant schedule: 1 epoch then --resume with epochs=2 must equal an uninterrupted 2-epoch run.
    train, test = data
    cfg = dict(CFG, schedule="constant")
    straight = tiny_model()
    fit(straight, train, test, TrainConfig(epochs=2, **cfg), progress=False)
    first = tiny_model()
    fit(first, train, test, TrainConfig(epochs=1, **cfg), checkpoint_dir=tmp_path, progress=False)
    resumed = tiny_model()
    result = fit(resumed, train, test, TrainConfig(epochs=2, **cfg), checkpoint_dir=tmp_path,
                 resume=True, progress=False)
    assert result.resumed_from_epoch == 1 and len(result.history) == 2
    assert same_weights(straight, resumed)


def test_interrupt_mid_epoch_then_resume_is_bit_identical(tmp_path, data):
    train, test = data
    cfg = TrainConfig(epochs=3, **CFG)  # cosine schedule, 10 steps per epoch
    straight = tiny_model()
    ref = fit(straight, train, test, cfg, progress=False)
    steps = [0]

    def interrupt(model):
        steps[0] += 1
        if steps[0] == 15:  # halfway through epoch 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model(), train, test, cfg, checkpoint_dir=tmp_path, after_step=interrupt, progress=False)
    assert load_checkpoint(tmp_path)["epoch"] == 1
    resumed = tiny_model()
    result = fit(resumed, train, test, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert same_weights(straight, resumed)
    assert [r.train_loss for r in result.history] == [r.train_loss for r in ref.history]
    assert not list(tmp_path.glob("*.tmp"))


KILLED_RUN = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_train import tiny_model
    from imcflow.train import TrainConfig, fit, load_dataset
    torch.set_num_threads(1)
    train = load_dataset("synthetic", "train", image_size=8, subset=300)
    test = load_dataset("synthetic", "test", image_size=8, subset=100)
    # Slow steps so the parent can kill the process during epoch 2.
    fit(tiny_model(), train, test, TrainConfig(epochs=3, batch_size=32, lr=0.05),
        checkpoint_dir={ckpt!r}, after_step=lambda m: time.sleep(0.05), progress=False)
""")


def test_killed_process_resumes_bit_identical(tmp_path, data):
    train, test = data
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN.format(tests=str(Path(__file__).parent), ckpt=str(tmp_path / "ck")))
    proc = subprocess.Popen([sys.executable, str(script)])
    ckpt = tmp_path / "ck" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert ckpt.exists(), "the child never wrote its first checkpoint"
    done = load_checkpoint(ckpt)["epoch"]
    assert done < 3, "the child finished before it was killed"
    resumed = tiny_model()
    result = fit(resumed, train, test, TrainConfig(epochs=3, **CFG), checkpoint_dir=tmp_path / "ck",
                 resume=True, progress=False)
    assert result.resumed_from_epoch == done
    straight = tiny_model()
    fit(straight, train, test, TrainConfig(epochs=3, **CFG), progress=False)
    assert same_weights(straight, resumed)


def test_hooks_extra_loss_and_after_step(data):
    train, _ = data
    model = tiny_model()
    mask = (torch.arange(60) % 2).view(10, 6).float()

    def zero_half(m):
        with torch.no_grad():
            m[-1].weight.mul_(mask.view(10, 6).repeat(1, 4))

    calls = []
    fit(model, train, None, TrainConfig(epochs=1, **CFG), progress=False, after_step=zero_half,
        extra_loss=lambda m: calls.append(1) or 0.0 * m[-1].weight.sum())
    assert len(calls) == 10
    assert float(model[-1].weight.detach()[mask.repeat(1, 4) == 0].abs().sum()) == 0.0


def test_resume_rejects_a_changed_configuration(tmp_path, data):
    train, _ = data
    fit(tiny_model(), train, None, TrainConfig(epochs=1, **CFG), checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr: checkpoint 0.05 vs now 0.1"):
        fit(tiny_model(), train, None, TrainConfig(epochs=2, batch_size=32, lr=0.1),
            checkpoint_dir=tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs"), (dict(lr=-1), "lr"), (dict(optimizer="rmsprop"), "optimizer"),
    (dict(schedule="step"), "schedule"), (dict(momentum=1.0), "momentum"),
    (dict(device="tpu"), "device"), (dict(weight_decay=-0.1), "weight_decay")])
def test_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FormatError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(FormatError, match="not an imcflow checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    written = save_checkpoint(tmp_path / "ok.pt", {"epoch": 1})
    assert load_checkpoint(written)["epoch"] == 1 and not (tmp_path / "ok.pt.tmp").exists()


def test_adam_and_constant_schedule_run(data):
    train, _ = data
    model = tiny_model()
    res = fit(model, train, None, TrainConfig(epochs=1, batch_size=64, lr=1e-3, optimizer="adam",
                                              schedule="constant"), progress=False)
    assert res.history[0].lr == 1e-3 and res.final_test_accuracy is None


def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "resnet20", "--data", "synthetic", "--image-size", "16", "--subset", "200",
                 "--test-subset", "100", "--epochs", "1", "--batch-size", "50", "--out", str(out),
                 "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "resnet20" and len(summary["history"]) == 1
    assert summary["data"]["train_images"] == 200 and summary["data"]["image_size"] == 16
    assert "final test accuracy" in capsys.readouterr().out
    assert main(["eval", str(out), "--format", "json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["top1"] == summary["final_test_accuracy"] and evaluated["images"] == 100
    # --resume on a finished run trains nothing more and reports the same accuracy.
    assert main(["train", "resnet20", "--data", "synthetic", "--image-size", "16", "--subset", "200",
                 "--test-subset", "100", "--epochs", "1", "--batch-size", "50", "--out", str(out),
                 "--quiet", "--resume", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["final_test_accuracy"] == summary["final_test_accuracy"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "resnet20", "--data", "svhn", "--root", str(tmp_path), "--epochs", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "train_32x32.mat" in capsys.readouterr().err
    assert main(["train", "resnet20", "--data", "synthetic", "--epochs", "1", "--optimizer", "lbfgs",
                 "--out", str(tmp_path / "r")]) == 2
    assert "optimizer" in capsys.readouterr().err
