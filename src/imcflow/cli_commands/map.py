"""``imcflow map``: map every conv/linear layer with im2col, SDK, VW-SDK and flex."""
from __future__ import annotations

import argparse

from imcflow.cli_commands import _common as c
from imcflow.mapping import map_network
from imcflow.report.mapping_report import FORMATTERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map a network onto crossbars and report cycles per method",
                       description="Map every conv and linear layer with im2col, SDK, VW-SDK and flex; "
                                   "report cycles, windows, tiles, utilization and the lower bound.")
    c.add_network_arguments(p)
    c.add_array_arguments(p)
    c.add_mapping_arguments(p)
    c.add_output_arguments(p)
    p.set_defaults(handler=run)
    c.declare_outputs(p, c.file_out)


def run(args: argparse.Namespace) -> int:
    network = c.network_from_args(args)
    result = map_network(network, c.array_from_args(args), c.methods_from_args(args),
                         c.options_from_args(args, network))
    c.emit(FORMATTERS[args.format](result), args.out)
    return 0
