"""``imcflow train``: train a built-in model on a dataset; checkpoint every epoch, resumable.

Writes ``OUT/checkpoint.pt`` (after every epoch) and ``OUT/summary.json`` (at the end): model, data,
configuration, per-epoch history and final test accuracy. A folder that already holds a run is
refused unless ``--resume`` (same run, checked) or ``--overwrite``; the default folder name carries a
digest of the configuration, so two different runs never share it. Parsing only; the work is in
:mod:`imcflow.train`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from imcflow.report.table import render_table


def add_data_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """Dataset selection shared by ``train`` and ``eval``."""
    # Names are not listed here: that would import torch for every imcflow command.
    parser.add_argument("--data", required=required, metavar="NAME",
                        help="dataset: digits, mnist, fashion-mnist, cifar10, cifar100, svhn, synthetic")
    parser.add_argument("--root", metavar="DIR",
                        help="folder holding the dataset files (default $IMCFLOW_DATA or ./data; "
                             "mnist and fashion-mnist default to their installed packages)")
    parser.add_argument("--subset", type=int, metavar="N",
                        help="use N images of the training split (a seeded random sample)")
    parser.add_argument("--test-subset", type=int, metavar="N",
                        help="use N images of the test split (a seeded random sample)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="batch size (train default 128, eval default 256)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: torch's choice)")


def apply_threads(args: argparse.Namespace) -> None:
    """Honour ``--threads`` (validated)."""
    if args.threads is not None:
        import torch

        from imcflow.errors import check_int

        torch.set_num_threads(check_int("--threads", args.threads, 1, 1024))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a built-in model on a dataset (checkpointed, resumable)",
                       description="Train a built-in model (see 'imcflow models') with SGD or Adam and a "
                                   "cosine schedule; checkpoint every epoch; --resume continues exactly "
                                   "where an interrupted run stopped.")
    p.add_argument("model", help="built-in model name, e.g. resnet20, cnn8, smallcnn-28")
    add_data_arguments(p, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", default="sgd", help="sgd or adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", help="cosine or constant (stepped every batch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="resize images to NxN (28 -> 32 pads 2 pixels per side)")
    p.add_argument("--in-channels", type=int, choices=(1, 3),
                   help="convert images to 1 (luma) or 3 (repeated gray) channels")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default runs/MODEL-DATA-<digest of the settings>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists (same settings; --epochs may grow)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in OUT (its checkpoint.pt and summary.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)
    p.set_defaults(output_paths=lambda args: [("--out", args.out, "dir")])


def load_split(args: argparse.Namespace, data: dict[str, Any], split: str):
    """One split of the dataset described by ``data`` (the dict a checkpoint stores)."""
    from imcflow.train.datasets import load_dataset

    subset = args.subset if split == "train" else args.test_subset
    return load_dataset(data["name"], split, root=data.get("root"), image_size=data.get("image_size"),
                        in_channels=data.get("in_channels"), subset=subset, seed=data.get("seed", 0))


RUN_FILES = ("checkpoint.pt", "summary.json")


def default_run_dir(args: argparse.Namespace) -> str:
    """``runs/MODEL-DATA-<digest>``: the digest covers every setting a resume must match (not
    ``--epochs``, so a longer resumed run finds its folder)."""
    from imcflow.io import short_digest

    keys = ("model", "data", "subset", "test_subset", "image_size", "in_channels", "seed", "batch_size",
            "lr", "optimizer", "momentum", "weight_decay", "schedule", "no_augment")
    return f"runs/{args.model}-{args.data}-{short_digest({k: getattr(args, k) for k in keys})}"


def run(args: argparse.Namespace) -> int:
    from imcflow.errors import check_int
    from imcflow.io import atomic_write_json, check_output_dir, claim_run_dir, dumps_json
    from imcflow.models import get_spec
    from imcflow.seeding import check_seed, seed_everything
    from imcflow.train import ModelRecipe, TrainConfig, fit

    get_spec(args.model)  # unknown names fail before any data is read
    check_seed(args.seed, "--seed")
    batch_size = 128 if args.batch_size is None else check_int("--batch-size", args.batch_size, 1)
    out = check_output_dir(args.out or default_run_dir(args), "--out")
    apply_threads(args)
    config = TrainConfig(epochs=args.epochs, batch_size=batch_size, lr=args.lr,
                         optimizer=args.optimizer, momentum=args.momentum,
                         weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                         augment=not args.no_augment, device=args.device)
    claim_run_dir(out, RUN_FILES, args.resume, args.overwrite, "--out")
    seed_everything(args.seed)  # before any data, model or sampler exists: the model init is seeded
    data = {"name": args.data, "root": args.root, "image_size": args.image_size,
            "in_channels": args.in_channels, "seed": args.seed, "test_subset": args.test_subset,
            "subset": args.subset}
    train_set = load_split(args, data, "train")
    test_set = load_split(args, data, "test")
    # Store the resolved geometry so 'imcflow eval' rebuilds exactly this input pipeline.
    data.update(image_size=train_set.image_size, in_channels=train_set.in_channels,
                num_classes=train_set.num_classes, mean=list(train_set.mean), std=list(train_set.std))
    recipe = ModelRecipe(args.model, {"num_classes": train_set.num_classes,
                                      "in_channels": train_set.in_channels,
                                      "input_size": (train_set.image_size, train_set.image_size)})
    model = recipe.build()
    result = fit(model, train_set, test_set, config, checkpoint_dir=out, resume=args.resume,
                 progress=not args.quiet, model_spec=recipe, data_spec=data, overwrite=args.overwrite)
    summary = {"model": recipe.to_dict(), "data": {**data, "train_images": len(train_set),
                                                   "test_images": len(test_set)},
               "config": config.to_dict(),
               "parameters": sum(p.numel() for p in model.parameters()), **result.to_dict()}
    atomic_write_json(out / "summary.json", summary)
    if args.format == "json":
        sys.stdout.write(dumps_json(summary) + "\n")
    else:
        rows = [[r.epoch, r.train_loss, r.train_accuracy, r.test_accuracy, r.lr, r.seconds]
                for r in result.history]
        print(render_table(["epoch", "loss", "train acc", "test acc", "lr", "seconds"], rows,
                           title=f"{args.model} on {args.data} ({len(train_set)} train / "
                                 f"{len(test_set)} test images)"))
        print(f"final test accuracy {result.final_test_accuracy:.4f}, {result.seconds:.1f} s; "
              f"wrote {out / 'checkpoint.pt'} and {out / 'summary.json'}")
    return 0
