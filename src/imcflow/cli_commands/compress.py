"""``imcflow compress``: train or load a baseline, apply a compression method, fine-tune, report the
deployed network; or, with ``--plan-only``, print a method's torch-free plan (VWC-SDK's rounds)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from imcflow.cli_commands import _common as c
from imcflow.errors import ConfigError
from imcflow.mapping import strategy_names
from imcflow.mapping.base import GEOMETRIES, SEARCHES
from imcflow.report.table import render_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress", help="compress a network for the crossbars (or print a method's plan)",
        description="Train or load a baseline, apply a compression method (see 'imcflow methods'), "
                    "fine-tune, and report baseline vs compressed: accuracy, parameters, crossbars, "
                    "cycles per mapping, utilization. --plan-only prints the method's plan from the "
                    "layer list and the array alone (no training).")
    c.add_network_arguments(p)
    c.add_array_arguments(p)
    for action in p._actions:  # compression trains quantized weights: 4 bits unless told otherwise
        if action.dest == "weight_bits":
            # 4, not 2: a 2-bit symmetric uniform quantizer is ternary (levels -1, 0, 1) and its zeros
            # would swamp the zeros a compression method makes.
            action.default, action.help = 4, "bits per weight, trained in and mapped (default 4)"
    p.add_argument("--method", required=True, help="compression method (see 'imcflow methods')")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option (repeatable; see 'imcflow methods')")
    p.add_argument("--mapping", default="all",
                   help=f"mapping methods to report: all or a comma list of {', '.join(strategy_names())}")
    p.add_argument("--geometry", choices=GEOMETRIES, default=None,
                   help="real: true stride/padding (default for models); paper: stride-1 valid conv")
    p.add_argument("--search", choices=SEARCHES, default="optimal",
                   help="VW-SDK search: exhaustive optimum, or the published code's search")
    p.add_argument("--plan-only", action="store_true",
                   help="print the method's plan (layer list + array only) and exit")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", metavar="FILE|DIR",
                   help="with --plan-only: write the plan to FILE; otherwise the run folder DIR "
                        "(default runs/compress/<model>-<data>-<method>-<array>-w<bits>)")
    g = p.add_argument_group("training (not with --plan-only)")
    g.add_argument("--data", help="dataset (digits, mnist, fashion-mnist, cifar10, cifar100, svhn, "
                                  "synthetic)")
    g.add_argument("--data-root", help="folder holding the dataset files")
    g.add_argument("--epochs", type=int, default=5, help="baseline training epochs (default 5)")
    g.add_argument("--finetune-epochs", type=int, default=10,
                   help="fine-tuning budget per round in epochs (default 10; see --patience)")
    g.add_argument("--patience", type=int, default=2,
                   help="end a round's fine-tuning after this many epochs without a rise in "
                        "validation accuracy (default 2; 0: always the full budget)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training images held out (seeded) as the validation split the "
                        "stopping rules read (default 0.1; 0: none, the rules read the test set)")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=0.05, help="baseline learning rate (SGD, cosine)")
    g.add_argument("--finetune-lr", type=float, default=0.01)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--subset", type=int, help="train on a seeded random subset of this many images")
    g.add_argument("--test-subset", type=int, help="evaluate on a seeded subset of the test split")
    g.add_argument("--image-size", type=int, help="resize images to this square size (default: the "
                                                  "model's input size)")
    g.add_argument("--quant", choices=c.NameChoices(_quant_names), default="uniform", metavar="SCHEME",
                   help="%(choices)s: weight quantizer trained in at --weight-bits (default uniform: "
                        "symmetric per-channel; dorefa is the VW-SDK authors' convention); none: float")
    g.add_argument("--act-bits", type=int, help="quantize layer inputs to this many bits")
    g.add_argument("--max-drop", type=float, default=1.0,
                   help="iterative methods: rounds stop when validation accuracy falls more than this "
                        "many points below the baseline's (default 1.0)")
    g.add_argument("--baseline-dir", help="baseline cache folder (default <out>/baselines)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--preset", default="isaac",
                   help="hardware preset for the energy column (see 'imcflow cost'); 'none' to skip")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out (its settings must match; device, preset, folders may "
                        "change)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (state, rounds, report; the baseline cache is kept)")
    p.set_defaults(handler=run)
    c.declare_outputs(p, lambda args: [("--out", args.out, "file" if args.plan_only else "dir"),
                                       ("--baseline-dir", args.baseline_dir, "dir")])


def _quant_names() -> list[str]:
    from imcflow.quant.quantizers import quant_scheme_names  # torch: only when the value is checked

    return quant_scheme_names()


def _method_options(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option must be KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _mapping_methods(args: argparse.Namespace) -> tuple[str, ...]:
    return c.methods_from_args(argparse.Namespace(method=args.mapping))


def run(args: argparse.Namespace) -> int:
    from imcflow.compress import get_method

    method = get_method(args.method)
    options = method.resolve_options(_method_options(args))
    array = c.array_from_args(args)
    if args.plan_only:
        return _plan_only(args, method, options, array)
    return _train_and_compress(args, method, options, array)


# ---------------------------------------------------------------------------------------------------


def _plan_structure(args: argparse.Namespace):
    """The layer list and its channel groups: from the torch model for built-in models (so residual
    couplings are known), from the chain rule for layer lists and network files."""
    from imcflow.compress.vwc_sdk import torch_groups
    from imcflow.models import create_model, default_input_shape, get_spec, model_names

    if args.model and not args.layer and args.model in model_names():
        from imcflow.compress.deploy import extract_network
        from imcflow.networks import parse_input_shape

        shape = parse_input_shape(args.input) or default_input_shape(args.model)
        if len(shape) != 3:
            raise ConfigError(f"--input must be CxHxW for {args.model}, got {args.input!r}")
        size = (shape[1], shape[2]) if get_spec(args.model).sized else None
        model = create_model(args.model, in_channels=shape[0], input_size=size)
        network = extract_network(model, shape, args.model)
        return network, torch_groups(model, shape)
    network = c.network_from_args(args)
    return network, None


def _plan_only(args: argparse.Namespace, method: Any, options: dict, array: Any) -> int:
    network, groups = _plan_structure(args)
    mapping = c.options_from_args(args, network)
    plan = method.plan(network, array, mapping, options, groups)
    if plan is None:
        raise ConfigError(f"method {method.name!r} has no torch-free plan; run it with --data instead")
    # A method's plan renders itself (MethodPlan): the CLI knows no plan types.
    c.emit(c.to_json(plan.to_dict()) if args.format == "json" else plan.render(), args.out)
    return 0


# ---------------------------------------------------------------------------------------------------


def _train_and_compress(args: argparse.Namespace, method: Any, options: dict, array: Any) -> int:
    from imcflow.cli_commands.train import apply_threads
    from imcflow.compress.pipeline import CompressConfig, run_compression, with_out_dir
    from imcflow.mapping import MappingOptions

    if args.layer or not args.model:
        raise ConfigError("training needs a built-in MODEL (see 'imcflow models'); --layer lists work "
                          "only with --plan-only")
    if not args.data:
        raise ConfigError("--data is required to train (or use --plan-only)")
    from imcflow.seeding import check_seed

    check_seed(args.seed, "--seed")
    from imcflow.io import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    if args.baseline_dir:
        check_output_dir(args.baseline_dir, "--baseline-dir")
    apply_threads(args)
    config = CompressConfig(
        model=args.model, data=args.data, method=method.name, array=array, method_options=options,
        mapping=MappingOptions(geometry=args.geometry or "real", search=args.search),
        mapping_methods=_mapping_methods(args), epochs=args.epochs,
        finetune_epochs=args.finetune_epochs, patience=args.patience, val_fraction=args.val_fraction,
        batch_size=args.batch_size, lr=args.lr,
        finetune_lr=args.finetune_lr, seed=args.seed, subset=args.subset, test_subset=args.test_subset,
        image_size=args.image_size, quant=args.quant, act_bits=args.act_bits, max_drop=args.max_drop,
        device=args.device, data_root=args.data_root, baseline_dir=args.baseline_dir,
        cost_preset=None if args.preset == "none" else args.preset)
    config = with_out_dir(config, args.out)
    report = run_compression(config, progress=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    if args.format == "json":
        sys.stdout.write(c.to_json(report.to_dict()) + "\n")
    else:
        print(report_table(report))
    print(f"wrote {config.out_dir}/report.json", file=sys.stderr)
    return 0


def weights_label(quant: str, bits: int) -> str:
    """How the report's header names the weights: float under ``--quant none`` (the bits only say
    how the mapping counts columns), else the quantizer; a 2-bit uniform quantizer is ternary.

    >>> weights_label("none", 4), weights_label("uniform", 2)
    ('float weights (--quant none; mapped as 4-bit)', '2-bit uniform weights (ternary: -1, 0, +1)')
    """
    if quant == "none":
        return f"float weights (--quant none; mapped as {bits}-bit)"
    ternary = " (ternary: -1, 0, +1)" if quant == "uniform" and bits == 2 else ""
    return f"{bits}-bit {quant} weights{ternary}"


def report_table(report: Any) -> str:
    """Baseline vs compressed per mapping method, then the rounds."""
    a = report.array
    title = (f"{report.model} on {report.data}, {report.method} on {a.rows}x{a.cols} arrays "
             f"({weights_label(report.config.get('quant', 'uniform'), a.weight_bits)} in "
             f"{a.cell_bits}-bit cells, C'={a.usable_cols})")
    head = ["network", "test accuracy", "validation accuracy", "parameters",
            "nonzero after compression", "nonzero as programmed"]
    rows = []
    for label, acc, vacc, dep in (
            ("baseline", report.baseline_accuracy, report.baseline_val_accuracy, report.baseline),
            ("compressed", report.compressed_accuracy, report.compressed_val_accuracy,
             report.compressed)):
        rows.append([label, f"{100 * acc:.2f}%", "-" if vacc is None else f"{100 * vacc:.2f}%",
                     dep.parameters, dep.nonzero_compression, dep.nonzero_weights])
    parts = [render_table(head, rows, title)]
    if report.rule:
        parts.append(f"rule: {report.rule}")
    mrows = []
    for m in (*report.baseline.mapping.methods, "best"):
        b, d = report.baseline.summary(m), report.compressed.summary(m)
        eb, ed = report.baseline.energy_j(m), report.compressed.energy_j(m)
        mrows.append([m, b.cycles, d.cycles, round(b.cycles / d.cycles, 3), b.arrays, d.arrays,
                      f"{b.utilization:.1%}", f"{d.utilization:.1%}",
                      "-" if eb is None else f"{eb:.3g}", "-" if ed is None else f"{ed:.3g}"])
    parts.append(render_table(["mapping", "cycles", "cycles after", "speedup", "crossbars",
                               "crossbars after", "utilization", "util. after", "energy J",
                               "energy J after"], mrows, "\nper mapping method (deployed networks)"))
    for r in report.rounds:
        match = r.summary.get("match")
        if match:
            on = match["on"] + (f" under {match['mapping']}" if match.get("mapping") else "")
            parts.append(f"\nmatched on {on}: target {match['target']:g}, reached {match['achieved']:g}"
                         f" (keep fraction {match['keep_fraction']:.4f})")
    if report.rounds:
        rrows = [[r.index, f"{100 * r.accuracy:.2f}%",
                  "-" if r.test_accuracy is None else f"{100 * r.test_accuracy:.2f}%",
                  "-" if r.epochs is None else r.epochs, "kept" if r.accepted else "discarded",
                  round(r.seconds, 1)] for r in report.rounds]
        parts.append(render_table(["round", "rule accuracy", "test accuracy", "epochs", "result",
                                   "seconds"], rrows, "\nrounds"))
    s = report.seconds
    parts.append(f"\naccuracy drop {report.accuracy_drop:.2f} points; baseline training "
                 f"{s['baseline_training']:.0f} s, rounds {s['rounds']:.0f} s, this call "
                 f"{s['total_this_call']:.0f} s")
    return "\n".join(parts)
