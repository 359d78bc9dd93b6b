"""Measured comparison of issue 7: low rank, group low rank and pruning at the same parameter count,
ResNet-20 on MNIST at 32x32; accuracy, and cycles under im2col / SDK / VW-SDK on two array sizes.

What runs (small on purpose, the CPU is shared): a seeded subset of MNIST (``--train`` images for
training, ``--test`` for testing), float weights, one baseline trained for ``--epochs`` epochs, then per
parameter budget (``--keep``: fraction of the decomposable layers' weights kept) every method applied
to a copy of the baseline and fine-tuned ``--finetune`` epoch(s). The array-aware group low rank is
chosen and fine-tuned once per array. Budgets are matched in parameters: the pruning baselines get
the plain low-rank model's parameter count. Output: a JSON file and a Markdown table.

    python scripts/exp_lowrank.py --out runs/exp_lowrank
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from imcflow.compress import lowrank_method, prune_baselines  # noqa: F401  (registration)
from imcflow.compress.base import CompressionContext, get_method
from imcflow.compress.deploy import count_parameters, deploy, extract_network
from imcflow.hardware.array import parse_array
from imcflow.io import atomic_write_json, atomic_write_text
from imcflow.mapping import MappingOptions
from imcflow.models import create_model
from imcflow.seeding import seed_everything
from imcflow.train import TrainConfig, evaluate, fit, load_dataset

MAPPINGS = ("im2col", "sdk", "vwsdk")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--finetune", type=int, default=1)
    p.add_argument("--keep", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--arrays", nargs="+", default=["128x128", "256x256"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/exp_lowrank")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    train = load_dataset("mnist", "train", image_size=32, subset=args.train, seed=args.seed)
    test = load_dataset("mnist", "test", image_size=32, subset=args.test, seed=args.seed)
    shape = (1, 32, 32)
    mapping = MappingOptions()
    arrays = [parse_array(a) for a in args.arrays]

    def cfg(epochs: int, lr: float, seed: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=128, lr=lr, seed=seed, device="cpu")

    seed_everything(args.seed)
    base = create_model("resnet20", num_classes=10, in_channels=1)
    t0 = time.perf_counter()
    fit(base, train, test, cfg(args.epochs, 0.05, args.seed), progress=False)
    base_acc = evaluate(base, test)
    rows = [_row("dense", None, base, base_acc, shape, arrays, mapping, None, None,
                 time.perf_counter() - t0)]
    print(f"baseline {base_acc:.4f} ({rows[0]['seconds']:.0f} s)", flush=True)

    def run(method: str, keep: float, options: dict, array=None) -> None:
        t1 = time.perf_counter()
        model = copy.deepcopy(base)
        m = get_method(method)
        opts = m.resolve_options(options)
        ctx = CompressionContext(array or arrays[0], mapping, opts, extract_network(model, shape),
                                 shape)
        step = m.apply(model, ctx)
        hooks = m.hooks(model, ctx)
        fit(model, train, test, cfg(args.finetune, 0.01, args.seed + 1), progress=False,
            after_step=hooks.after_step)
        acc = evaluate(model, test)
        label = method + (f"@{array.label}" if array is not None else "")
        row = _row(label, keep, model, acc, shape, [array] if array else arrays, mapping, m, ctx,
                   time.perf_counter() - t1)
        row["summary"] = {k: v for k, v in step.summary.items() if k in ("sparsity", "keep_fraction",
                                                                         "target_params", "weights")}
        rows.append(row)
        print(f"keep={keep} {label}: acc {acc:.4f} params {row['parameters']} nonzero "
              f"{row['nonzero']} cycles {row['cycles']} ({row['seconds']:.0f} s)", flush=True)
        return row

    for keep in args.keep:
        lr_row = run("lowrank", keep, {"ratio": keep})
        target = lr_row["parameters"]
        run("group-lowrank", keep, {"ratio": keep, "rank_groups": 4})
        for array in arrays:
            run("group-lowrank", keep, {"ratio": keep, "policy": "array-aware",
                                        "group_choices": "1,2,4,8", "mapping_method": "sdk"}, array)
        run("magnitude-prune", keep, {"target_params": target})
        run("filter-prune", keep, {"target_params": target})
    result = {"args": vars(args), "baseline_accuracy": base_acc, "rows": rows,
              "seconds_total": time.perf_counter() - t_start}
    atomic_write_json(os.path.join(args.out, "results.json"), result, default=str)
    table = _markdown(rows, arrays)
    atomic_write_text(os.path.join(args.out, "table.md"), table)
    print(table)
    print(f"total {result['seconds_total']:.0f} s")


def _row(label, keep, model, acc, shape, arrays, mapping, method, ctx, seconds) -> dict:
    cycles = {}
    nonzero = None
    for array in arrays:
        if ctx is not None:
            ctx = CompressionContext(array, ctx.mapping, ctx.options, ctx.network, ctx.input_shape)
        dep = deploy(model, shape, array, MAPPINGS, mapping, method, ctx, cost=False)
        cycles[array.label] = {m: dep.summary(m).cycles for m in MAPPINGS}
        nonzero = dep.nonzero_weights
    return {"method": label, "keep": keep, "accuracy": acc, "parameters": count_parameters(model),
            "nonzero": nonzero, "cycles": cycles, "seconds": seconds}


def _markdown(rows: list[dict], arrays) -> str:
    head = ["budget", "method", "acc %", "params", "nonzero weights"]
    for a in arrays:
        head += [f"{a.label} {m}" for m in MAPPINGS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = ["dense" if r["keep"] is None else f"{r['keep']:.2f}", r["method"],
                 f"{100 * r['accuracy']:.1f}", str(r["parameters"]), str(r["nonzero"])]
        for a in arrays:
            c = r["cycles"].get(a.label)
            cells += [str(c[m]) if c else "-" for m in MAPPINGS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
