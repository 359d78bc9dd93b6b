"""``imcflow map``: map every conv/linear layer with every registered strategy (im2col, SDK, VW-SDK,
flex and any plugin) or the ones asked for."""
from __future__ import annotations

import argparse

from imcflow.cli_commands import _common as c
from imcflow.cli_commands._objective import add_objective_argument, with_objective
from imcflow.mapping import MappingStrategy, map_network
from imcflow.report.mapping_report import FORMATTERS, mapping_detail_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map a network onto crossbars and report cycles per method",
                       description="Map every conv and linear layer with every registered strategy "
                                   "(or --method); report cycles per method, the best and cycles/LB "
                                   "(--detail: windows, tiles, utilization and the lower bound).")
    c.add_network_arguments(p)
    c.add_array_arguments(p)
    c.add_mapping_arguments(p)
    c.add_output_arguments(p, FORMATTERS.names())
    p.add_argument("--detail", action="store_true",
                   help="the full table: every method's window, tiles and utilization, MAC efficiency "
                        "and the lower bound (default: a compact table of cycles per method)")
    add_objective_argument(p)
    p.add_argument("--preset", default="isaac",
                   help="hardware preset the energy/edp objective is priced with (default: %(default)s)")
    p.set_defaults(handler=run)
    c.declare_outputs(p, c.file_out)


def run(args: argparse.Namespace) -> int:
    network = c.network_from_args(args)
    methods: tuple[str | MappingStrategy, ...] = c.methods_from_args(args)
    if args.objective is not None:
        from imcflow.cost import CostSettings
        from imcflow.hardware.preset import load_preset

        methods = with_objective(methods, args.objective, CostSettings(load_preset(args.preset)))
    result = map_network(network, c.array_from_args(args), methods, c.options_from_args(args, network))
    render = mapping_detail_table if args.detail and args.format == "table" else FORMATTERS[args.format]
    c.emit(render(result), args.out)
    return 0
