"""``imcflow compare CONFIG.yaml``: several compression arms, several seeds, one table, one Pareto
plot and the raw JSON (:mod:`imcflow.compress.compare`)."""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="run compression arms with several seeds and compare them",
        description="Run every arm of a comparison file (model, data, array, seeds, arms; see "
                    "imcflow.compress.compare) with the compression pipeline's rules, resumably, and "
                    "write compare.md (table), compare.json (raw numbers) and pareto.png.")
    p.add_argument("config", help="comparison file (.yaml or .json)")
    p.add_argument("--out", default=None, help="output folder (default runs/compare/<file stem>)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from imcflow.compress.compare import CompareConfig, run_compare, write_compare

    config = CompareConfig.load(args.config)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = args.out or os.path.join("runs", "compare", Path(args.config).stem)
    result = run_compare(config, out, progress=not args.quiet)
    paths = write_compare(result, out)
    print(result.table(), end="")
    print("wrote " + ", ".join(paths), file=sys.stderr)
    return 0
