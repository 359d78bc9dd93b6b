"""The ``imcflow`` command line: parses arguments, calls the public API, prints or writes.

Each subcommand is a module in :mod:`imcflow.cli_commands` with ``register(subparsers)``; the
subcommand's handler returns an exit code. Library errors become one clear line on stderr.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from imcflow.errors import ImcflowError
from imcflow.validate import require_finite_floats


def build_parser() -> argparse.ArgumentParser:
    from imcflow import cli_commands

    parser = argparse.ArgumentParser(
        prog="imcflow",
        description="Map, verify, cost and compress CNNs on in-memory-computing crossbar arrays.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(cli_commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"imcflow.cli_commands.{info.name}")
        module.register(sub)
    require_finite_floats(parser)  # no float option accepts inf or nan
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Building the parser reads the registries (choices, help), which loads plugins: a broken
        # plugin is reported like any other error, not as a traceback.
        parser = build_parser()
    except ImcflowError as exc:
        print(f"imcflow: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        from imcflow.cli_commands._common import check_outputs

        check_outputs(args)  # every output path is checked before any work starts
        return int(args.handler(args) or 0)
    except ImcflowError as exc:
        print(f"imcflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"imcflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `imcflow map ... | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
