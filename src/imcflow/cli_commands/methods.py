"""``imcflow methods``: list the compression methods and their options (with defaults)."""
from __future__ import annotations

import argparse

from imcflow.cli_commands import _common as c
from imcflow.report.table import render_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the compression methods and their options",
                       description="List the registered compression methods ('imcflow compress "
                                   "--method NAME'), what they change, and their options.")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imcflow.compress import get_method, method_names

    methods = [get_method(n) for n in method_names()]
    if args.format == "json":
        c.emit(c.to_json([m.to_dict() for m in methods]), None)
        return 0
    rows = [[m.name, "yes" if m.iterative else "no", m.changes,
             "yes" if m.to_dict()["has_plan"] else "no", m.description] for m in methods]
    parts = [render_table(["method", "iterative", "changes", "--plan-only", "description"], rows)]
    for m in methods:
        if m.options:
            orows = [[o.name, str(o.default), "|".join(map(str, o.choices)) if o.choices else "", o.help]
                     for o in m.options]
            parts.append(render_table(["option", "default", "choices", "what"], orows,
                                      f"\n{m.name} options (--option KEY=VALUE)"))
    print("\n".join(parts))
    return 0
