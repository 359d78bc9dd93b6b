"""VWC-SDK measured end to end: ResNet-20 and CNN-8 (``--models``) on MNIST at 32x32, arrays 256x512
and 512x256, ``--weight-bits`` weights (``--quant``, trained in), 1-bit cells, several seeds.

Per seed (``--seeds``) and model the baseline is trained once (cached under ``<out>/baselines``) and
shared by both arrays; every (model, array) run then prunes round after round with the authors'
procedure (default options), fine-tunes each round until the validation accuracy (a seeded 10 % of the
training images) stops rising (``--patience``, at most ``--finetune-epochs``) and stops at the 1-point
drop rule on the validation split. The table gives test accuracy mean +- std (min-max) over seeds and
the cycles, crossbars, parameters, energy and rounds of the first seed; ``<out>/results.json`` holds
every seed. Rerunning reuses every finished step (the pipeline resumes).

    python scripts/exp_vwc_sdk.py --out runs/exp_vwc_sdk
    python scripts/exp_vwc_sdk.py --smoke --out /tmp/smoke     # seconds: the test suite runs this
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any

import torch

from imcflow.compress.pipeline import CompressConfig, run_compression
from imcflow.compress.seeds import spread
from imcflow.hardware.array import parse_array
from imcflow.io import atomic_write_json
from imcflow.report.results import add_results_arguments, markdown_table, results_path, write_results

MODELS = {  # model -> baseline epochs (CNN-8 trains ~7x faster per epoch than ResNet-20)
    "resnet20": 4,
    "resnet20-wide": 4,
    "cnn8": 6,
}
ARRAYS = ("256x512", "512x256")
COLUMNS = ["model", "array", "top-1 before % (mean +- std, min-max)", "top-1 after %",
           "VW-SDK cycles before -> after", "best-mapping cycles before -> after",
           "crossbars (VW-SDK)", "parameters", "rounds kept/tried", "energy VW-SDK (uJ)", "rounds (s)"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist")
    p.add_argument("--subset", type=int, default=4000, help="training images (seeded subset)")
    p.add_argument("--test-subset", type=int, default=1000, help="test images (seeded subset)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--finetune-epochs", type=int, default=10, help="fine-tuning budget per round")
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--weight-bits", type=int, default=2)
    p.add_argument("--quant", default="dorefa", choices=("uniform", "dorefa", "pow2", "none"),
                   help="weight quantizer (default dorefa, the authors' convention: at 2 bits four "
                        "levels, no zero, unlike the ternary 2-bit uniform)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", default="resnet20,cnn8")
    p.add_argument("--arrays", default=",".join(ARRAYS))
    p.add_argument("--epochs", type=int, help="baseline epochs for every model (default per model)")
    add_results_arguments(p, "exp_vwc_sdk", "seconds: CNN-8 on synthetic data, 128 images, one array, "
                                            "seed and epoch")
    args = p.parse_args(argv)
    if args.smoke:
        args.data, args.subset, args.test_subset, args.finetune_epochs = "synthetic", 128, 64, 1
        args.models, args.arrays, args.seeds, args.epochs, args.threads = "cnn8", "256x512", [0], 1, 1
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; allowed: {', '.join(MODELS)}")
    args.results = results_path(args, "exp_vwc_sdk")
    return args


def run_one(args: argparse.Namespace, model: str, label: str, seed: int) -> dict[str, Any]:
    config = CompressConfig(
        model=model, data=args.data, method="vwc-sdk",
        array=parse_array(label, cell_bits=1, weight_bits=args.weight_bits), image_size=args.image_size,
        epochs=args.epochs or MODELS[model], finetune_epochs=args.finetune_epochs,
        patience=args.patience, subset=args.subset, test_subset=args.test_subset, quant=args.quant,
        max_drop=1.0, device="cpu", seed=seed,
        out_dir=os.path.join(args.out, f"{model}-{label}-s{seed}"),
        baseline_dir=os.path.join(args.out, "baselines"))
    t = time.perf_counter()
    # resume=True: rerunning the script continues (and reuses) its own finished runs; a run folder
    # holding other settings is refused.
    report = run_compression(config, progress=not args.smoke, resume=True)
    b, c = report.baseline, report.compressed
    return {
        "model": model, "array": label, "seed": seed,
        "baseline_accuracy": report.baseline_accuracy, "compressed_accuracy": report.compressed_accuracy,
        "baseline_val_accuracy": report.baseline_val_accuracy,
        "compressed_val_accuracy": report.compressed_val_accuracy,
        "cycles_vwsdk": [b.summary("vwsdk").cycles, c.summary("vwsdk").cycles],
        "cycles_best": [b.summary("best").cycles, c.summary("best").cycles],
        "crossbars_vwsdk": [b.summary("vwsdk").arrays, c.summary("vwsdk").arrays],
        "parameters": [b.parameters, c.parameters],
        "energy_uj": [1e6 * (b.energy_j("vwsdk") or float("nan")),
                      1e6 * (c.energy_j("vwsdk") or float("nan"))],
        "rounds_kept": sum(r.accepted for r in report.rounds), "rounds_tried": len(report.rounds),
        "seconds_baseline": report.seconds["baseline_training"], "seconds_rounds": report.seconds["rounds"],
        "seconds_call": time.perf_counter() - t,
        "channels_after": [(l.layer.name, l.layer.in_channels, l.layer.out_channels) for l in c.layers],
    }


def _acc(values: list[float]) -> str:
    s = spread([100 * v for v in values])
    return f"{s.mean:.2f} +- {s.std:.2f} ({s.min:.2f}-{s.max:.2f}), n={len(values)}"


def table(rows: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["array"]), []).append(r)
    lines = []
    for (model, array), rs in groups.items():
        r = rs[0]
        (cb, ca), (bb, ba) = r["cycles_vwsdk"], r["cycles_best"]
        lines.append([model, array, _acc([x["baseline_accuracy"] for x in rs]),
                      _acc([x["compressed_accuracy"] for x in rs]),
                      f"{cb:,} -> {ca:,} ({cb / ca:.3f}x)", f"{bb:,} -> {ba:,} ({bb / ba:.3f}x)",
                      f"{r['crossbars_vwsdk'][0]} -> {r['crossbars_vwsdk'][1]}",
                      f"{r['parameters'][0]:,} -> {r['parameters'][1]:,}",
                      f"{r['rounds_kept']}/{r['rounds_tried']}",
                      f"{r['energy_uj'][0]:.2f} -> {r['energy_uj'][1]:.2f}", f"{r['seconds_rounds']:.0f}"])
    return markdown_table(COLUMNS, lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = [run_one(args, model, label, seed) for seed in args.seeds
            for model in args.models.split(",") for label in args.arrays.split(",")]
    total = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "results.json"),
                      {"rows": rows, "total_seconds": total, "args": vars(args)})
    command = "python scripts/exp_vwc_sdk.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    notes = (f"Cycles, crossbars, parameters, energy (ISAAC preset) and rounds of seed {args.seeds[0]}; "
             f"total {total:.0f} s wall, {args.threads} thread(s).")
    print(write_results(args.results, table(rows), command.strip(), notes=notes))
    print(f"wrote {args.results} and {os.path.join(args.out, 'results.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
