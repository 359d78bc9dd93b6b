"""``imcflow report RESULTS``: one self-contained HTML page (and optional PNGs) of a sweep's results."""
from __future__ import annotations

import argparse
import os
import sys

from imcflow.cli_commands import _common as c
from imcflow.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML report and plots of a sweep's results table",
                       description="Pareto fronts, per-layer bars, utilization heatmaps and a crossbar "
                                   "layout picture of a sweep, in one self-contained HTML page.")
    p.add_argument("results", help="results.parquet, results.csv or a sweep output folder")
    p.add_argument("--out", metavar="FILE", help="write the HTML page to FILE")
    p.add_argument("--plot", metavar="DIR", help="write the same plots as PNG files into DIR")
    p.add_argument("--layout-layer", default="5,5,3,3,2,2", metavar="H,W,Kh,Kw,IC,OC",
                   help="layer of the crossbar layout picture (default: %(default)s)")
    p.add_argument("--layout-array", default="32x8", metavar="RxC",
                   help="array of the crossbar layout picture (default: %(default)s)")
    p.set_defaults(handler=run)
    c.declare_outputs(p, lambda args: [("--out", args.out, "file"), ("--plot", args.plot, "dir")])


def run(args: argparse.Namespace) -> int:
    from imcflow.io import atomic_write_text
    from imcflow.report.sweep_report import load_results, render_html, sweep_figures, write_plots

    if not args.out and not args.plot:
        raise ConfigError("nothing to write: give --out FILE.html and/or --plot DIR")
    frame = load_results(args.results)
    figures = sweep_figures(frame, args.layout_layer, args.layout_array)
    if args.out:
        text = render_html(frame, figures, f"imcflow sweep report: {os.path.abspath(args.results)}")
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot:
        for path in write_plots(figures, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0
