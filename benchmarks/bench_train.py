"""Benchmark of imcflow's training loop against a plain PyTorch loop, one epoch, in the same run.

One command: ``python benchmarks/bench_train.py`` (options: ``--model``, ``--images``, ``--batch``,
``--threads``, ``--repeats``, ``--smoke``). Every arm trains the same model (same initial weights) on
the same in-memory images (the ``synthetic`` dataset at 32x32, seeded) with the same batches, SGD
(momentum 0.9, weight decay 5e-4) and the same number of torch threads:

* ``plain``: the loop a PyTorch user writes (normalise, forward, cross-entropy, zero_grad, backward,
  step), no augmentation, no bookkeeping;
* ``imcflow``: :func:`imcflow.train.fit` with ``augment=False`` (same work as ``plain`` plus its
  per-step schedule, running loss/accuracy and progress bookkeeping); the target is at most 1.15x plain;
* ``imcflow+aug``: :func:`fit` with its default random-crop augmentation;
* ``imcflow+quant``: :func:`fit` on the model with 4-bit uniform fake-quantized weights
  (:func:`imcflow.quant.quantize_model`): the quantization overhead;
* ``plain+cl``, ``imcflow+cl``: both loops with the model and the inputs in channels-last layout.

Arms are interleaved (one epoch of each arm per repeat) so that a change in the machine's load hits
every arm alike; each ratio is per repeat (arm / plain of the same repeat) and the table gives the
median and the range over repeats. Both the wall time and the CPU time of this process
(``time.process_time``) are recorded; on a shared machine the CPU time is the steadier measure (the
wall time also counts the time other jobs held the cores), so the ratios use it. Output: a Markdown
table on stdout and, with ``--out``, JSON.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from imcflow.models import create_model
from imcflow.train import TrainConfig, fit, load_dataset, prepare_inputs
from imcflow.train.loop import OPTIMIZERS, _batches


def plain_epoch(model: nn.Module, data, batch: int, seed: int, channels_last: bool = False) -> None:
    """One epoch of the textbook loop on the same batches :func:`fit` draws for ``seed``."""
    config = TrainConfig(batch_size=batch, seed=seed, augment=False, device="cpu")
    opt = OPTIMIZERS["sgd"]([p for p in model.parameters() if p.requires_grad], config)
    x_all, y_all = data.tensors[:2]
    model.train()
    for idx in _batches(len(y_all), batch, torch.Generator().manual_seed(seed)):
        xb = prepare_inputs(x_all[idx], data)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        loss = nn.functional.cross_entropy(model(xb), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def imcflow_epoch(model: nn.Module, data, batch: int, seed: int, augment: bool = False) -> None:
    fit(model, data, None, TrainConfig(epochs=1, batch_size=batch, seed=seed, augment=augment,
                                       device="cpu"), progress=False)


class ChannelsLastInput(nn.Module):
    """Wraps a model so its input is converted to channels-last before the first layer (``fit`` feeds
    contiguous NCHW batches)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


def arms(base: nn.Module, quantized: nn.Module) -> dict[str, tuple[nn.Module, Callable]]:
    """Arm name -> (model to copy at every repeat, epoch function(model, data, batch, seed))."""
    cl = copy.deepcopy(base).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return {
        "plain": (base, plain_epoch),
        "imcflow": (base, imcflow_epoch),
        "imcflow+aug": (base, lambda m, d, b, s: imcflow_epoch(m, d, b, s, augment=True)),
        "imcflow+quant": (quantized, imcflow_epoch),
        "plain+cl": (cl, lambda m, d, b, s: plain_epoch(m, d, b, s, channels_last=True)),
        "imcflow+cl": (ChannelsLastInput(cl), imcflow_epoch),
    }


def run(model_name: str, images: int, batch: int, threads: int, repeats: int, seed: int = 0) -> dict:
    from imcflow.quant import quantize_model

    torch.set_num_threads(threads)
    data = load_dataset("synthetic", "train", image_size=32, subset=images, seed=seed)
    torch.manual_seed(seed)
    base = create_model(model_name, num_classes=data.num_classes, in_channels=data.in_channels)
    quantized = quantize_model(copy.deepcopy(base), 4, None, "uniform")
    table = arms(base, quantized)
    seconds: dict[str, list[float]] = {name: [] for name in table}
    wall: dict[str, list[float]] = {name: [] for name in table}
    warm = torch.utils.data.TensorDataset(*data.tensors)  # first calls allocate and pick kernels: untimed
    warm.tensors = tuple(t[:2 * batch] for t in data.tensors)
    warm.mean, warm.std = data.mean, data.std  # type: ignore[attr-defined]
    for model, epoch in table.values():
        epoch(copy.deepcopy(model), warm, batch, seed)
    for _ in range(repeats):
        for name, (model, epoch) in table.items():
            trial = copy.deepcopy(model)
            c0, t0 = time.process_time(), time.perf_counter()
            epoch(trial, data, batch, seed)
            seconds[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - t0)
    ratios = {name: [s / p for s, p in zip(v, seconds["plain"], strict=True)]
              for name, v in seconds.items()}
    return {"model": model_name, "images": images, "batch": batch, "threads": threads,
            "repeats": repeats, "seconds": seconds, "wall_seconds": wall, "ratio_to_plain": ratios,
            "quant_overhead": [q / f for q, f in zip(seconds["imcflow+quant"], seconds["imcflow"],
                                                     strict=True)]}


def markdown(result: dict) -> str:
    lines = ["| arm | CPU s per epoch (median, min-max) | x plain, CPU (median, min-max) | "
             "wall s (median, min-max) |", "|---|---|---|---|"]
    for name, secs in result["seconds"].items():
        r, w = result["ratio_to_plain"][name], result["wall_seconds"][name]
        lines.append(f"| {name} | {statistics.median(secs):.2f} ({min(secs):.2f}-{max(secs):.2f}) | "
                     f"{statistics.median(r):.3f} ({min(r):.3f}-{max(r):.3f}) | "
                     f"{statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) |")
    q = result["quant_overhead"]
    lines.append(f"\nfake-quantization overhead (imcflow+quant / imcflow, CPU): {statistics.median(q):.3f}x "
                 f"(range {min(q):.3f}-{max(q):.3f}); {result['model']}, {result['images']} images, "
                 f"batch {result['batch']}, {result['threads']} thread(s), {result['repeats']} repeats")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="also write the raw seconds as JSON here")
    p.add_argument("--smoke", action="store_true", help="seconds: smallcnn-style tiny run (tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.images, args.batch, args.repeats = 32, 16, 1
    result = run(args.model, args.images, args.batch, args.threads, args.repeats)
    print(markdown(result), end="")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
