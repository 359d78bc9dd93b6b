"""``imcflow models``: list the built-in networks."""
from __future__ import annotations

import argparse

from imcflow.networks import builtin_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the built-in networks")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print("\n".join(builtin_names()))
    return 0
