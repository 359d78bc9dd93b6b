"""Accuracy of a trained ResNet-20 on simulated crossbars vs ADC bits and conductance noise (issue 14).

What runs (small on purpose, the CPU is shared): ResNet-20 (1 input channel) trained with float
weights on a seeded subset of Fashion-MNIST at 32x32 (``--train`` images, ``--epochs`` epochs), tested
on a seeded subset of the test split (``--test`` images). Then the same trained network is evaluated
with every Conv2d/Linear simulated (``imcflow.sim.wrapper``), for every ADC resolution in ``--adc-bits``
(plus an ideal ADC) and every conductance variation in ``--sigma``, in two modes:

* ``crossbar``: VW-SDK tiles on ``--array`` arrays, 8-bit weights in 2-bit cells (offset column), 8-bit
  bit-serial inputs, one ADC read per column, input step and row tile, full scale "max";
* ``layer-adc``: the per-layer model aihwkit assumes (8-bit input DAC, one ADC read of the whole
  layer's analog sum per output, full scale "max", the same per-weight sigma).

Output: in ``--out`` ``results.json``, ``table.md`` (the README table: one column per ADC setting) and
``accuracy.png``; the results file (``--results``, default ``docs/results/exp_sim_accuracy.md``, with
``--smoke`` in ``--out``) holds the same numbers one row per setting, with the command and commit.

    python scripts/exp_sim_accuracy.py --out docs/sim_accuracy
    python scripts/exp_sim_accuracy.py --smoke --out /tmp/smoke     # seconds: tiny data, two settings
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

import torch

from imcflow.hardware.array import parse_array
from imcflow.io import atomic_write_json, atomic_write_text
from imcflow.models import create_model
from imcflow.report.results import add_results_arguments, markdown_table, results_path, write_results
from imcflow.sim import AdcSpec, NoiseSpec, SimConfig
from imcflow.sim.wrapper import on_crossbars
from imcflow.train import TrainConfig, evaluate, fit, load_dataset

MODES = ("crossbar", "layer-adc")
COLUMNS = ["mode", "sigma", "ADC bits", "accuracy %"]


def sim_config(adc_bits: int | None, sigma: float, seed: int) -> SimConfig:
    return SimConfig(weight_bits=8, cell_bits=2, input_bits=8, seed=seed,
                     adc=AdcSpec(adc_bits) if adc_bits else None,
                     noise=NoiseSpec(sigma=sigma) if sigma else None)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    dataset = "synthetic" if args.smoke else args.dataset
    size = 8 if args.smoke else 32
    train = load_dataset(dataset, "train", image_size=size, in_channels=1, subset=args.train, seed=args.seed)
    test = load_dataset(dataset, "test", image_size=size, in_channels=1, subset=args.test, seed=args.seed)
    torch.manual_seed(args.seed)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    t0 = time.perf_counter()
    fit(model, train, test, TrainConfig(epochs=args.epochs, batch_size=128, lr=0.05, seed=args.seed,
                                        device="cpu"), progress=False)
    train_s = time.perf_counter() - t0
    model.eval()
    float_acc = evaluate(model, test)
    print(f"float accuracy {float_acc:.4f} (trained in {train_s:.0f} s)", flush=True)
    array = parse_array(args.array, cell_bits=2, weight_bits=8)
    rows = []
    for mode in MODES:
        for sigma in args.sigma:
            for bits in [None, *args.adc_bits]:
                t1 = time.perf_counter()
                with torch.no_grad(), on_crossbars(model, array, "vwsdk",
                                                   config=sim_config(bits, sigma, args.seed), mode=mode):
                    acc = evaluate(model, test, batch_size=64)
                rows.append({"mode": mode, "sigma": sigma, "adc_bits": bits, "accuracy": acc,
                             "seconds": time.perf_counter() - t1})
                print(f"{mode:9s} sigma={sigma:<5g} adc={bits or 'ideal':<5} acc={acc:.4f} "
                      f"({rows[-1]['seconds']:.0f} s)", flush=True)
    return {"dataset": dataset, "train_images": args.train, "test_images": args.test,
            "epochs": args.epochs, "seed": args.seed, "array": args.array, "float_accuracy": float_acc,
            "train_seconds": train_s, "total_seconds": time.perf_counter() - t_start,
            "threads": args.threads, "rows": rows}


def table(res: dict) -> str:
    """Markdown: one row per (mode, sigma), one column per ADC setting, accuracy in %."""
    bits = list(dict.fromkeys(r["adc_bits"] for r in res["rows"]))
    head = "| mode | sigma | " + " | ".join("ideal ADC" if b is None else f"{b}-bit ADC" for b in bits) + " |"
    lines = [head, "|" + "---|" * (len(bits) + 2)]
    for mode in MODES:
        for sigma in dict.fromkeys(r["sigma"] for r in res["rows"]):
            acc = {r["adc_bits"]: r["accuracy"] for r in res["rows"]
                   if r["mode"] == mode and r["sigma"] == sigma}
            lines.append(f"| {mode} | {sigma:g} | " + " | ".join(f"{100 * acc[b]:.1f}" for b in bits) + " |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits = [b for b in dict.fromkeys(r["adc_bits"] for r in res["rows"]) if b is not None]
    ideal_x = max(bits) + 1 if bits else 1
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for mode, style in zip(MODES, ("-o", "--s"), strict=True):
        for sigma in dict.fromkeys(r["sigma"] for r in res["rows"]):
            pts = sorted((ideal_x if r["adc_bits"] is None else r["adc_bits"], 100 * r["accuracy"])
                         for r in res["rows"] if r["mode"] == mode and r["sigma"] == sigma)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{mode}, sigma {sigma:g}")
    ax.axhline(100 * res["float_accuracy"], color="grey", lw=0.8, ls=":", label="float")
    ax.set_xticks([*bits, ideal_x])
    ax.set_xticklabels([*map(str, bits), "ideal"])
    ax.set_xlabel("ADC bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"ResNet-20, {res['dataset']} ({res['test_images']} test images), {res['array']}",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def long_table(res: dict) -> str:
    """The results-file table: one row per (mode, sigma, ADC setting)."""
    return markdown_table(COLUMNS, [[r["mode"], f"{r['sigma']:g}", r["adc_bits"] or "ideal",
                                     f"{100 * r['accuracy']:.1f}"] for r in res["rows"]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--test", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--adc-bits", type=int, nargs="+", default=[8, 6, 5, 4, 3])
    p.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.05])
    p.add_argument("--array", default="128x128")
    p.add_argument("--seed", type=int, default=0)
    add_results_arguments(p, "exp_sim_accuracy", "synthetic 8x8 data, 32 train / 8 test images, one "
                                                 "epoch, ADC 4 bits, sigma 0.05")
    args = p.parse_args(argv)
    args.results = results_path(args, "exp_sim_accuracy")
    if args.smoke:
        args.train, args.test, args.epochs, args.adc_bits, args.sigma = 32, 8, 1, [4], [0.05]
    os.makedirs(args.out, exist_ok=True)
    res = run(args)
    atomic_write_json(os.path.join(args.out, "results.json"), res)
    md = table(res)
    atomic_write_text(os.path.join(args.out, "table.md"), md)
    plot(res, os.path.join(args.out, "accuracy.png"))
    print(md + write_results(args.results, long_table(res), _command(argv), notes=_notes(res, args)))
    print(f"wrote {args.out}/results.json, table.md, accuracy.png and {args.results}")
    return 0


def _command(argv: list[str] | None) -> str:
    """The command line as the results file records it."""
    args = sys.argv[1:] if argv is None else argv
    return ("python scripts/exp_sim_accuracy.py " + shlex.join(args)).strip()


def _notes(res: dict, args: argparse.Namespace) -> str:
    return (f"ResNet-20 trained on {res['train_images']} {res['dataset']} images for {res['epochs']} "
            f"epoch(s), float accuracy {100 * res['float_accuracy']:.1f} % on {res['test_images']} test "
            f"images; total {res['total_seconds']:.0f} s wall, {args.threads} thread(s).")


if __name__ == "__main__":
    raise SystemExit(main())
