"""``imcflow export``: write a network as NeuroSim NetWork.csv, a YAML/JSON network file or ONNX,
and optionally NeuroSim trace files: one layer with random data, or every layer of a model from real
images."""
from __future__ import annotations

import argparse
import os
import sys

from imcflow.cli_commands import _common as c
from imcflow.errors import ConfigError
from imcflow.frontends.export import EXPORTERS, ExportOptions, export_network
from imcflow.frontends.neurosim import GROUP_POLICIES, NEUROSIM_VERSIONS, PADDING_CONVENTIONS
from imcflow.io import atomic_write_bytes, dumps_json, make_output_dir
from imcflow.seeding import check_seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a network as NeuroSim CSV, YAML, JSON or ONNX",
                       description="Write MODEL's layer list in another format. NeuroSim: --padding "
                                   "neurosim writes the raw input size (NeuroSim's own files), padded "
                                   "writes H+2p so NeuroSim's window count is the real one (but its "
                                   "operation count, and so its TOPS/W, grows with the padded size).")
    c.add_network_arguments(p)
    p.add_argument("--to", required=True, choices=sorted(EXPORTERS), help="output format")
    p.add_argument("--padding", choices=PADDING_CONVENTIONS, default="neurosim",
                   help="NeuroSim input-size convention of the CSV and the traces (default neurosim: raw H)")
    p.add_argument("--groups", choices=GROUP_POLICIES, default="refuse",
                   help="NeuroSim: refuse grouped layers (default) or write one row per group")
    p.add_argument("--out", metavar="FILE", help="write to FILE (required for onnx) instead of stdout")
    t = p.add_argument_group("NeuroSim trace files (with --to neurosim)")
    t.add_argument("--neurosim-version", choices=sorted(NEUROSIM_VERSIONS), default="1.4",
                   help="argument order and driver defaults of the run script (default %(default)s)")
    t.add_argument("--sub-array", type=int, default=None, metavar="N",
                   help="NeuroSim subarray rows (V1.4 argument; default: the version's driver, 128)")
    t.add_argument("--parallel-read", type=int, default=None, metavar="N",
                   help="rows read in parallel (V1.4 argument; default: the version's driver, 128)")
    t.add_argument("--trace", metavar="LAYER", help="write trace files for LAYER alone "
                                                     "(seeded random integer weights and inputs)")
    t.add_argument("--traces", action="store_true",
                   help="write every layer's traces from real images through the model (built-in "
                        "MODEL with random or --weights, or --checkpoint) and its stored integer weights")
    t.add_argument("--checkpoint", metavar="PATH", help="with --traces: a checkpoint from 'imcflow train'")
    t.add_argument("--weights", metavar="FILE", help="with --traces: a state_dict (.pt) for MODEL")
    t.add_argument("--data", metavar="NAME",
                   help="with --traces: images from this dataset (digits, mnist, fashion-mnist, cifar10, "
                        "...; default: the checkpoint's)")
    t.add_argument("--root", metavar="DIR", help="with --traces: dataset folder")
    t.add_argument("--images", type=int, default=8, metavar="N",
                   help="with --traces: test images in the batch (default %(default)s)")
    t.add_argument("--image-index", type=int, default=0, metavar="I",
                   help="with --traces: the batch image the files describe (default 0)")
    t.add_argument("--trace-dir", default="neurosim_trace", metavar="DIR", help="where (default %(default)s)")
    t.add_argument("--force", action="store_true", help="overwrite files already in --trace-dir")
    t.add_argument("--weight-bits", type=int, default=8, help="trace weight bits (default 8)")
    t.add_argument("--input-bits", type=int, default=8, help="trace input bits (default 8)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the trace's random data and of an ONNX export's random weights "
                        "(default 0)")
    p.set_defaults(handler=run)
    c.declare_outputs(p, lambda args: [
        ("--out", args.out, "file"),
        ("--trace-dir", args.trace_dir if args.trace or args.traces else None, "dir")])


def _write_files(files: dict[str, bytes], directory: str, force: bool) -> None:
    existing = [f for f in files if os.path.exists(os.path.join(directory, f))]
    if existing and not force:
        raise ConfigError(f"--trace-dir {directory!r} already holds {', '.join(existing[:3])}"
                          f"{' ...' if len(existing) > 3 else ''}; give --force to overwrite")
    make_output_dir(directory, "--trace-dir")
    for fname, data in files.items():
        atomic_write_bytes(os.path.join(directory, fname), data)


def _check_bits(args: argparse.Namespace) -> None:
    for name, bits in (("--weight-bits", args.weight_bits), ("--input-bits", args.input_bits)):
        if not 2 <= bits <= 16:
            raise ConfigError(f"{name} must be in [2, 16], got {bits}")


def _trace_files(network, args: argparse.Namespace):
    from imcflow.frontends.neurosim import random_trace

    trace = random_trace(network.layer(args.trace), args.seed, args.weight_bits, args.input_bits,
                         args.padding, network)
    return trace, trace.files(version=args.neurosim_version, sub_array=args.sub_array,
                              parallel_read=args.parallel_read)


def _write_trace(trace, files: dict[str, bytes], args: argparse.Namespace) -> None:
    _write_files(files, args.trace_dir, args.force)
    script = trace.file_names()["command"]
    print(f"wrote NeuroSim trace files for {args.trace} to {args.trace_dir}/; run them with\n  "
          f"NEUROSIM=/path/to/NeuroSIM/main sh {os.path.join(args.trace_dir, script)}", file=sys.stderr)


def _model_and_images(args: argparse.Namespace):
    import torch

    from imcflow.train.datasets import load_dataset
    from imcflow.train.loop import prepare_inputs

    data: dict = {}
    if args.checkpoint:
        from imcflow.train import load_checkpoint, rebuild_model

        state = load_checkpoint(args.checkpoint)
        model = rebuild_model(state)
        data = dict(state.get("data") or {})
        name = state["model_spec"]["name"]
    else:
        from imcflow.models.registry import MODELS, create_model

        if args.model not in MODELS:
            raise ConfigError(f"--traces needs a built-in model ({', '.join(MODELS)}) or --checkpoint; "
                              f"got {args.model!r}")
        name = args.model
        shape = c.network_from_args(args).input_shape
        if not shape:
            raise ConfigError(f"model {name!r} has no input shape; give --input CxHxW")
        torch.manual_seed(args.seed)
        model = create_model(name, in_channels=shape[0], input_size=(shape[1], shape[2]))
        if args.weights:
            try:
                model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
            except (OSError, RuntimeError) as exc:
                raise ConfigError(f"--weights {args.weights}: cannot load into {name} ({exc})") from None
        shape_data = {"image_size": shape[1], "in_channels": shape[0]}
        data.update(shape_data)
    if args.data:
        data["name"] = args.data
    if args.root:
        data["root"] = args.root
    if not data.get("name"):
        raise ConfigError("--traces needs images: give --data NAME (digits, mnist, fashion-mnist, "
                          "cifar10, ...)")
    c_images = args.images
    if c_images < 1:
        raise ConfigError(f"--images must be >= 1, got {c_images}")
    dataset = load_dataset(data["name"], "test", root=data.get("root"), image_size=data.get("image_size"),
                           in_channels=data.get("in_channels"), subset=c_images, seed=args.seed)
    return model, name, prepare_inputs(dataset.images, dataset)


def _write_traces(args: argparse.Namespace) -> None:
    from imcflow.frontends.neurosim_traces import network_traces

    model, name, images = _model_and_images(args)
    trace_set, summary = network_traces(model, images, name, args.weight_bits, args.input_bits,
                                        args.padding, args.neurosim_version, args.image_index,
                                        args.sub_array, args.parallel_read)
    files = trace_set.files()
    files["trace_summary.json"] = (dumps_json(summary) + "\n").encode()
    _write_files(files, args.trace_dir, args.force)
    total = sum(len(v) for v in files.values())
    print(f"wrote {len(files)} files ({total / 1e6:.1f} MB) for {len(trace_set.traces)} layers of {name} to "
          f"{args.trace_dir}/; run them with\n  NEUROSIM=/path/to/NeuroSIM/main sh "
          f"{os.path.join(args.trace_dir, 'run_neurosim.sh')}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed, "--seed")
    if (args.trace or args.traces) and args.to != "neurosim":
        raise ConfigError("--trace/--traces write NeuroSim trace files; use them with --to neurosim")
    if args.trace and args.traces:
        raise ConfigError("give --trace LAYER (one layer, random data) or --traces (every layer), not both")
    if (args.checkpoint or args.weights or args.data) and not args.traces:
        raise ConfigError("--checkpoint, --weights and --data feed --traces; add --traces")
    if args.to == "onnx" and not args.out:
        raise ConfigError("--to onnx writes a binary file: give --out FILE.onnx")
    _check_bits(args)
    if args.traces:
        _write_traces(args)
        return 0
    network = c.network_from_args(args)
    result = export_network(network, args.to, ExportOptions(padding=args.padding, groups=args.groups,
                                                            seed=args.seed))
    # every check (the floor plan of a one-layer trace network too) runs before anything is written
    trace = _trace_files(network, args) if args.trace else None
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        for path in result.save(args.out):
            print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(result.text or "")
    if trace is not None:
        _write_trace(trace[0], trace[1], args)
    return 0
