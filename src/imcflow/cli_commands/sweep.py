"""``imcflow sweep SPEC``: evaluate a design-space sweep locally or on a Ray cluster."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from imcflow.cli_commands import _common as c
from imcflow.cli_commands._objective import add_objective_argument
from imcflow.sweep.executors import EXECUTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="evaluate a sweep spec (models x arrays x bits x mappings x ...)",
                       description="Expand or sample a sweep spec (YAML/JSON), evaluate every point "
                                   "not already cached, and write results.csv and results.parquet.")
    p.add_argument("spec", help="sweep spec file (.yaml or .json); schema: imcflow.sweep.spec")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: runs/sweep/<spec name>)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="result cache shared across sweeps (default: <out>/cache)")
    p.add_argument("--executor", choices=sorted(EXECUTORS), default="local",
                   help="local: worker processes on this machine; ray: a Ray cluster")
    p.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="Ray cluster to join (default: start a local one)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (local) or CPUs of the "
                                                           "local Ray cluster (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=None, help="analytic points per task (default: auto)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of another sweep in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_objective_argument(p)
    p.set_defaults(handler=run)
    c.declare_outputs(p, lambda args: [("--out", args.out, "dir"), ("--cache", args.cache, "dir")])


def run(args: argparse.Namespace) -> int:
    from imcflow.io import make_output_dir
    from imcflow.sweep import load_spec, run_sweep, with_mappings

    spec = load_spec(args.spec)
    if args.objective is not None:
        spec = with_mappings(spec, [f"opt-{args.objective}"])
    out = args.out or os.path.join("runs", "sweep", spec.name)
    make_output_dir(out)
    handler = logging.FileHandler(os.path.join(out, "sweep.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("imcflow.sweep")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = run_sweep(spec, out, args.executor, args.workers, args.address, args.cache, args.chunk,
                           progress=not args.quiet, overwrite=args.overwrite)
    finally:
        logger.removeHandler(handler)
        handler.close()
    print(f"sweep {spec.name}: {len(result.rows)} points ({result.computed} computed, {result.cached} "
          f"cached) in {result.seconds:.1f} s", file=sys.stderr)
    for path in result.files:
        print(f"wrote {path}", file=sys.stderr)
    return 0
