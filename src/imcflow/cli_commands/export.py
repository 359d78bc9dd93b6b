"""``imcflow export``: write a network as NeuroSim NetWork.csv, a YAML/JSON network file or ONNX,
and optionally NeuroSim trace files for one layer."""
from __future__ import annotations

import argparse
import os
import sys

from imcflow.cli_commands import _common as c
from imcflow.errors import ConfigError
from imcflow.frontends.export import EXPORTERS, ExportOptions, export_network
from imcflow.frontends.neurosim import GROUP_POLICIES, PADDING_CONVENTIONS
from imcflow.io import atomic_write_text, make_output_dir
from imcflow.seeding import check_seed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a network as NeuroSim CSV, YAML, JSON or ONNX",
                       description="Write MODEL's layer list in another format. NeuroSim: --padding "
                                   "neurosim writes the raw input size (NeuroSim's own files), padded "
                                   "writes H+2p so NeuroSim's window count is the real one.")
    c.add_network_arguments(p)
    p.add_argument("--to", required=True, choices=sorted(EXPORTERS), help="output format")
    p.add_argument("--padding", choices=PADDING_CONVENTIONS, default="neurosim",
                   help="NeuroSim input-size convention (default neurosim: raw H)")
    p.add_argument("--groups", choices=GROUP_POLICIES, default="refuse",
                   help="NeuroSim: refuse grouped layers (default) or write one row per group")
    p.add_argument("--out", metavar="FILE", help="write to FILE (required for onnx) instead of stdout")
    t = p.add_argument_group("NeuroSim trace files (with --to neurosim)")
    t.add_argument("--trace", metavar="LAYER", help="also write NeuroSim trace files for LAYER "
                                                     "(seeded random integer weights and inputs)")
    t.add_argument("--trace-dir", default="neurosim_trace", metavar="DIR", help="where (default %(default)s)")
    t.add_argument("--weight-bits", type=int, default=8, help="trace weight bits (default 8)")
    t.add_argument("--input-bits", type=int, default=8, help="trace input bits (default 8)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the trace's random data and of an ONNX export's random weights "
                        "(default 0)")
    p.set_defaults(handler=run)
    c.declare_outputs(p, lambda args: [("--out", args.out, "file"),
                                       ("--trace-dir", args.trace_dir if args.trace else None, "dir")])


def _write_trace(network, args: argparse.Namespace) -> None:
    from imcflow.frontends.neurosim import random_trace

    for name, bits in (("--weight-bits", args.weight_bits), ("--input-bits", args.input_bits)):
        if not 2 <= bits <= 16:
            raise ConfigError(f"{name} must be in [2, 16], got {bits}")
    trace = random_trace(network.layer(args.trace), args.seed, args.weight_bits, args.input_bits)
    make_output_dir(args.trace_dir, "--trace-dir")
    for fname, text in trace.files().items():
        atomic_write_text(os.path.join(args.trace_dir, fname), text)
    script = trace.file_names()["command"]
    print(f"wrote NeuroSim trace files for {args.trace} to {args.trace_dir}/; run them with\n  "
          f"NEUROSIM=/path/to/NeuroSIM/main sh {os.path.join(args.trace_dir, script)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    check_seed(args.seed, "--seed")
    if args.trace and args.to != "neurosim":
        raise ConfigError("--trace writes NeuroSim trace files; use it with --to neurosim")
    if args.to == "onnx" and not args.out:
        raise ConfigError("--to onnx writes a binary file: give --out FILE.onnx")
    network = c.network_from_args(args)
    result = export_network(network, args.to, ExportOptions(padding=args.padding, groups=args.groups,
                                                            seed=args.seed))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out:
        for path in result.save(args.out):
            print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(result.text or "")
    if args.trace:
        _write_trace(network, args)
    return 0
