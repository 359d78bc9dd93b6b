"""``imcflow cost``: latency, energy (by component) and area of a mapped network on a preset."""
from __future__ import annotations

import argparse
import sys

from imcflow.cli_commands import _common as c
from imcflow.cli_commands._objective import add_objective_argument, with_objective
from imcflow.hardware.array import parse_array
from imcflow.mapping import map_network, strategy_names


# The cost model, its presets (YAML) and reports are imported when a cost is computed, not when the
# parser is built: every `imcflow` command builds this subcommand's parser.
def _formats() -> list[str]:
    from imcflow.report.cost_report import FORMATTERS

    return FORMATTERS.names()


def _modes() -> tuple[str, ...]:
    from imcflow.cost.results import MODES

    return MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="latency, energy and area of a mapped network on a hardware preset",
                       description="Map a network, count every event of its plan and cost it with a "
                                   "preset whose constants cite their sources.")
    c.add_network_arguments(p)
    c.add_array_arguments(p, bits_from="preset")
    c.add_mapping_arguments(p)
    c.add_output_arguments(p, c.NameChoices(_formats))
    p.add_argument("--preset", default="isaac",
                   help="preset name (see 'imcflow presets') or a preset YAML file (default: isaac)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one preset constant, e.g. adc.bits=6 (repeatable)")
    p.add_argument("--mode", choices=c.NameChoices(_modes), default="preloaded", metavar="MODE",
                   help="%(choices)s; preloaded: every layer's arrays present and working in parallel; "
                        "time-multiplexed: all activations on one array")
    p.add_argument("--input-bits", type=int, default=None,
                   help="activation precision (default: the preset's)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    add_objective_argument(p)
    # Cost one method unless asked for more; weight/cell bits default to the preset's.
    p.set_defaults(handler=run, method="flex")
    c.declare_outputs(p, lambda args: [("--out", args.out, "file"), ("--plot", args.plot, "dir")])


def run(args: argparse.Namespace) -> int:
    from imcflow.cost import CostSettings, cost_mapping, preset_array
    from imcflow.hardware.preset import load_preset
    from imcflow.report.cost_report import FORMATTERS
    from imcflow.report.mapping_report import coincidence_note

    network = c.network_from_args(args)
    preset = load_preset(args.preset, args.overrides)
    shape = parse_array(args.array)
    array = preset_array(preset, shape.rows, shape.cols, args.cell_bits, args.weight_bits)
    methods = c.methods_from_args(args)
    options = c.options_from_args(args, network)
    settings = CostSettings(preset, args.mode, args.input_bits)
    every_method = tuple(strategy_names())
    plot_methods = tuple(dict.fromkeys(methods + every_method)) if args.plot else methods
    mapping = map_network(network, array, with_objective(plot_methods, args.objective, settings),
                          options)
    if args.objective is not None:
        methods = (*methods, mapping.methods[-1])
        plot_methods = (*plot_methods, mapping.methods[-1])
    every = {m: cost_mapping(mapping, m, settings) for m in plot_methods}
    costs = {m: every[m] for m in methods}
    text = FORMATTERS[args.format](costs)
    note = coincidence_note(mapping)  # e.g. isaac on 256 columns: C' = 32, every method is im2col
    if note and args.format == "table":
        text += "\n\n" + note
    c.emit(text, args.out)
    if args.plot:
        from imcflow.report.plots import write_cost_plots

        for path in write_cost_plots(costs, {m: every[m] for m in every_method}, args.plot, note):
            print(f"wrote {path}", file=sys.stderr)
    return 0
