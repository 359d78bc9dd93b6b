"""Low rank, group low rank and pruning baselines on ResNet-20 (compression.md section A), with the
pruning baselines matched on parameters and on cycles under named mappings.

Per seed (``--seeds``): a seeded subset of the data (``--train`` training images, of which
``--val-fraction`` is held out for the stopping rule, ``--test`` test images), float weights, one
baseline trained ``--epochs`` epochs, then per budget (``--keep``: fraction of the decomposable
layers' weights kept) every arm applied to a copy of the baseline and fine-tuned until the validation
accuracy has not risen for ``--patience`` epochs (at most ``--finetune`` epochs):

* ``lowrank``, ``group-lowrank`` (g = 4) at the budget;
* ``magnitude-prune`` at the plain low-rank model's parameter count (the accuracy ceiling: its
  cycles are the dense model's);
* ``filter-prune`` at that parameter count (``--match params``) and, for every ``cycles:MAPPING`` in
  ``--match``, at the group low-rank model's cycles under that mapping on the first array (bisected,
  never above).

Cycles are whole-network activations of the deployed model under every mapping on every array (low-rank
layers R + L; grouped convs charged group after group except under flex). Output: ``<out>/results.json``
(every seed's numbers) and the Markdown table ``--results`` (default ``docs/results/exp_lowrank.md``;
the README includes it verbatim): accuracy mean +- std (min-max) over seeds, parameters, non-zero
weights and cycles of the first seed.

    python scripts/exp_lowrank.py --out runs/exp_lowrank
    python scripts/exp_lowrank.py --smoke --out /tmp/smoke     # seconds: the test suite runs this
"""
from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import time
from typing import Any

import torch

from imcflow.compress import lowrank_method, prune_baselines  # noqa: F401  (registration)
from imcflow.compress.base import CompressionContext, get_method
from imcflow.compress.deploy import count_parameters, deploy, extract_network
from imcflow.compress.seeds import spread
from imcflow.hardware.array import parse_array
from imcflow.io import atomic_write_json
from imcflow.mapping import MappingOptions
from imcflow.models import create_model
from imcflow.report.results import add_results_arguments, markdown_table, results_path, write_results
from imcflow.seeding import seed_everything
from imcflow.train import Plateau, TrainConfig, evaluate, fit, load_dataset, split_validation

MAPPINGS = ("im2col", "sdk", "vwsdk", "flex")
COLUMNS_HEAD = ["budget", "arm", "matched on", "acc % mean +- std (min-max)", "params", "nonzero weights"]


def columns(arrays: list[Any]) -> list[str]:
    """The table's header for these arrays (``tests/test_scripts.py`` checks it)."""
    return COLUMNS_HEAD + [f"{a.label} {m}" for a in arrays for m in MAPPINGS]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--finetune", type=int, default=10, help="fine-tuning budget (epochs)")
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--keep", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--arrays", nargs="+", default=["128x128", "256x256"])
    p.add_argument("--match", nargs="+", default=["params", "cycles:sdk", "cycles:vwsdk", "cycles:flex"],
                   help="what filter-prune is matched on: params, or cycles:MAPPING (group low rank's "
                        "cycles under MAPPING on the first array)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_results_arguments(p, "exp_lowrank", "seconds: synthetic 16x16 data, 64 images, one budget, "
                                            "array, seed and epoch each")
    args = p.parse_args(argv)
    if args.smoke:
        args.data, args.train, args.test, args.epochs, args.finetune = "synthetic", 64, 32, 1, 1
        args.image_size = 16
        args.keep, args.arrays, args.seeds, args.match = [0.5], ["128x128"], [0], ["params", "cycles:vwsdk"]
    for m in args.match:
        if m != "params" and not (m.startswith("cycles:") and m[7:] in MAPPINGS):
            p.error(f"--match {m!r}: allowed: params, cycles:{{{','.join(MAPPINGS)}}}")
    args.results = results_path(args, "exp_lowrank")
    return args


def run_seed(args: argparse.Namespace, seed: int, arrays: list[Any]) -> list[dict[str, Any]]:
    size = args.image_size
    full = load_dataset(args.data, "train", image_size=size, in_channels=1, subset=args.train, seed=seed)
    train, val = split_validation(full, args.val_fraction, seed)
    test = load_dataset(args.data, "test", image_size=size, in_channels=1, subset=args.test, seed=seed)
    shape = (1, size, size)
    mapping = MappingOptions()

    def cfg(epochs: int, lr: float, s: int) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=128, lr=lr, seed=s, device="cpu")

    seed_everything(seed)
    base = create_model(args.model, num_classes=full.num_classes, in_channels=1)
    t0 = time.perf_counter()
    fit(base, train, val, cfg(args.epochs, 0.05, seed), progress=False)
    rows = [_row("dense", None, "-", base, evaluate(base, test), shape, arrays, mapping, None, None,
                 time.perf_counter() - t0, seed)]
    print(f"seed {seed}: baseline {rows[0]['accuracy']:.4f} ({rows[0]['seconds']:.0f} s)", flush=True)

    def run(method: str, keep: float, options: dict[str, Any], label: str, matched: str) -> dict[str, Any]:
        t1 = time.perf_counter()
        model = copy.deepcopy(base)
        m = get_method(method)
        ctx = CompressionContext(arrays[0], mapping, m.resolve_options(options),
                                 extract_network(model, shape), shape)
        step = m.apply(model, ctx)
        hooks = m.hooks(model, ctx)
        fit(model, train, val, cfg(args.finetune, 0.01, seed + 1), progress=False,
            after_step=hooks.after_step, stop=Plateau(args.patience))
        row = _row(label, keep, matched, model, evaluate(model, test), shape, arrays, mapping, m, ctx,
                   time.perf_counter() - t1, seed)
        row["summary"] = {k: v for k, v in step.summary.items() if k in ("sparsity", "keep_fraction",
                                                                         "match", "cycles")}
        rows.append(row)
        print(f"seed {seed} keep={keep} {label} [{matched}]: acc {row['accuracy']:.4f} params "
              f"{row['parameters']} cycles {row['cycles'][arrays[0].label]} ({row['seconds']:.0f} s)",
              flush=True)
        return row

    for keep in args.keep:
        plain = run("lowrank", keep, {"ratio": keep}, "lowrank", "-")
        group = run("group-lowrank", keep, {"ratio": keep, "rank_groups": 4}, "group-lowrank", "-")
        run("magnitude-prune", keep, {"target_params": plain["parameters"]}, "magnitude-prune",
            "params of lowrank")
        for match in args.match:
            if match == "params":
                run("filter-prune", keep, {"target_params": plain["parameters"]}, "filter-prune",
                    "params of lowrank")
            else:
                on = match.split(":", 1)[1]
                run("filter-prune", keep, {"target_cycles": group["cycles"][arrays[0].label][on],
                                           "match_mapping": on}, "filter-prune",
                    f"{on} cycles of group-lowrank on {arrays[0].label}")
    return rows


def _row(label: str, keep: float | None, matched: str, model: Any, acc: float, shape: tuple[int, ...],
         arrays: list[Any], mapping: MappingOptions, method: Any, ctx: Any, seconds: float,
         seed: int) -> dict[str, Any]:
    cycles = {}
    nonzero = None
    for array in arrays:
        if ctx is not None:
            ctx = CompressionContext(array, ctx.mapping, ctx.options, ctx.network, ctx.input_shape)
        dep = deploy(model, shape, array, MAPPINGS, mapping, method, ctx)
        cycles[array.label] = {m: dep.summary(m).cycles for m in MAPPINGS}
        nonzero = dep.nonzero_weights
    return {"arm": label, "keep": keep, "matched": matched, "seed": seed, "accuracy": acc,
            "parameters": count_parameters(model), "nonzero": nonzero, "cycles": cycles,
            "seconds": seconds}


def table(rows: list[dict[str, Any]], arrays: list[Any]) -> str:
    """One line per (budget, arm, match): accuracy over seeds; shapes and cycles of the first seed."""
    groups: dict[tuple[Any, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["keep"], r["arm"], r["matched"]), []).append(r)
    lines = []
    for (keep, arm, matched), rs in groups.items():
        acc = spread([100 * r["accuracy"] for r in rs])
        first = rs[0]
        cells = ["dense" if keep is None else f"{keep:.2f}", arm, matched,
                 f"{acc.mean:.1f} +- {acc.std:.1f} ({acc.min:.1f}-{acc.max:.1f}), n={len(rs)}",
                 first["parameters"], first["nonzero"]]
        for a in arrays:
            cells += [first["cycles"][a.label][m] for m in MAPPINGS]
        lines.append(cells)
    return markdown_table(columns(arrays), lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()
    arrays = [parse_array(a) for a in args.arrays]
    rows = [r for seed in args.seeds for r in run_seed(args, seed, arrays)]
    result = {"args": vars(args), "rows": rows, "seconds_total": time.perf_counter() - t_start}
    atomic_write_json(os.path.join(args.out, "results.json"), result, default=str)
    command = "python scripts/exp_lowrank.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = write_results(args.results, table(rows, arrays), command.strip(),
                         notes=f"Total {result['seconds_total']:.0f} s wall, {args.threads} thread(s).")
    print(text)
    print(f"wrote {args.results} and {os.path.join(args.out, 'results.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
