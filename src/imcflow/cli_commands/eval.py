"""``imcflow eval CHECKPOINT``: top-1 accuracy of a trained checkpoint on a dataset's test split.

The model is rebuilt from the checkpoint's recipe; the data settings (name, image size, channels,
root) default to the ones it was trained with, and ``--data``/``--root`` override name and folder.
"""
from __future__ import annotations

import argparse
import sys

from imcflow.cli_commands.train import add_data_arguments, apply_threads, load_split


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="top-1 accuracy of a checkpoint written by 'imcflow train'",
                       description="Rebuild the model of a checkpoint and report its top-1 accuracy "
                                   "on the test split of its dataset (or of --data).")
    p.add_argument("checkpoint", help="checkpoint file or run directory (holding checkpoint.pt)")
    add_data_arguments(p, required=False)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imcflow.errors import ConfigError, check_int
    from imcflow.io import dumps_json
    from imcflow.train import evaluate, load_checkpoint, rebuild_model
    from imcflow.train.checkpoint import checkpoint_path

    batch_size = 256 if args.batch_size is None else check_int("--batch-size", args.batch_size, 1)
    apply_threads(args)
    state = load_checkpoint(args.checkpoint)
    model = rebuild_model(state)
    data = dict(state.get("data") or {})
    if args.data:
        data["name"] = args.data
    if args.root:
        data["root"] = args.root
    if not data.get("name"):
        raise ConfigError("the checkpoint does not name its dataset; give --data NAME")
    if args.split == "test" and args.test_subset is None:
        # for eval, --subset means the evaluated split; default: the test images training reported on
        args.test_subset = args.subset if args.subset is not None else data.get("test_subset")
    dataset = load_split(args, data, args.split)
    expected = data.get("num_classes")
    if expected is not None and dataset.num_classes != expected:
        raise ConfigError(f"--data {data['name']!r} has {dataset.num_classes} classes, the model "
                          f"was trained for {expected}")
    accuracy = evaluate(model, dataset, batch_size=batch_size)
    result = {"checkpoint": str(checkpoint_path(args.checkpoint)), "model": state["model_spec"]["name"],
              "data": data["name"], "split": args.split, "images": len(dataset),
              "epoch": int(state.get("epoch", 0)), "top1": accuracy}
    if args.format == "json":
        sys.stdout.write(dumps_json(result) + "\n")
    else:
        print(f"{result['model']} (epoch {result['epoch']}) on {result['data']} {args.split} "
              f"({len(dataset)} images): top-1 {accuracy:.4f}")
    return 0
