"""``imcflow presets``: list the built-in hardware presets, or show one with every constant's source."""
from __future__ import annotations

import argparse

from imcflow.cli_commands import _common as c
from imcflow.report.table import engineering, render_table, unit_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list hardware presets or show one with its sources",
                       description="Without NAME: the built-in presets. With NAME (or a YAML file): "
                                   "every constant, its value and its source.")
    p.add_argument("name", nargs="?", help="preset name or file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--out", metavar="FILE")
    p.set_defaults(handler=run)
    c.declare_outputs(p, c.file_out)


def show_value(key: str, value: object) -> str:
    """A preset constant for reading: floats in engineering notation with the unit its key names
    (``adc.conversion_time_s`` 7.8125e-10 -> ``781.2 ps``); integers, flags and names as they are."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return engineering(value, unit_of(key))
    return str(value)


def run(args: argparse.Namespace) -> int:
    from imcflow.hardware.preset import load_preset, preset_names  # YAML: only when asked

    if args.name is None:
        presets = [load_preset(n) for n in preset_names()]
        if args.format == "json":
            text = c.to_json([{"name": p.name, "description": p.description, "source": p.source,
                               "technology": p.technology} for p in presets])
        else:
            text = render_table(["name", "technology", "description", "source"],
                                [[p.name, p.technology, p.description, p.source] for p in presets])
    else:
        p = load_preset(args.name, args.overrides)
        if args.format == "json":
            text = c.to_json(p.to_dict())
        else:
            rows = [[k, show_value(k, v), p.sources[k]] for k, v in p.values.items()]
            text = render_table(["key", "value", "source"], rows,
                                f"{p.name}: {p.description} ({p.source})")
    c.emit(text, args.out)
    return 0
