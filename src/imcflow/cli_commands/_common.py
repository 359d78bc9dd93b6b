"""Arguments every network-taking command shares, and output writing. No logic beyond parsing."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec, parse_array
from imcflow.layers import Network, parse_layer_spec
from imcflow.mapping import MappingOptions, strategy_names
from imcflow.mapping.base import GEOMETRIES, SEARCHES, Geometry
from imcflow.networks import builtin_names, load_network, parse_input_shape


class NameChoices:
    """argparse ``choices`` read from a registry only when a value is checked or help is printed, so
    building the parser imports nothing heavy (the registry's module may need torch). Give the
    argument a ``metavar`` (argparse lists the choices in the usage line otherwise, at build time) and
    ``%(choices)s`` in its help."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names

    def __contains__(self, value: object) -> bool:
        return value in list(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names()))


def add_network_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """MODEL (built-in name, file.py:factory, network file) or repeated ``--layer``; ``--input``."""
    parser.add_argument("model", nargs="?" if not required else None,
                        help="built-in name (see 'imcflow models'), file.py:factory, or a network "
                             "file (.onnx, .csv, .yaml, .json)")
    parser.add_argument("--layer", action="append", default=[], metavar="H,W,Kh,Kw,IC,OC[,s[,p[,g]]]",
                        help="an ad-hoc conv layer (repeatable) instead of a model")
    parser.add_argument("--input", metavar="CxHxW", help="input shape for file.py:factory models")


def add_array_arguments(parser: argparse.ArgumentParser, default_array: str = "512x512",
                        bits_from: str | None = None) -> None:
    """``--array``, ``--weight-bits``, ``--cell-bits``; with ``bits_from`` (e.g. "preset") the bit
    widths default to None, meaning that source decides."""
    default = "%(default)s" if bits_from is None else f"the {bits_from}'s"
    bits = 1 if bits_from is None else None
    parser.add_argument("--array", default=default_array, metavar="RxC",
                        help="crossbar rows x cols (default: %(default)s)")
    parser.add_argument("--weight-bits", type=int, default=bits, metavar="N",
                        help=f"bits per weight (default: {default})")
    parser.add_argument("--cell-bits", type=int, default=bits, metavar="N",
                        help=f"bits per cell (default: {default})")


def add_mapping_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="all", help=f"all or one of: {', '.join(strategy_names())}")
    parser.add_argument("--geometry", choices=GEOMETRIES, default=None,
                        help="real: true stride/padding (default for models); paper: stride-1 valid "
                             "conv on the listed HxW (default for the published layer lists)")
    parser.add_argument("--search", choices=SEARCHES, default="optimal",
                        help="VW-SDK search: exhaustive optimum, or the published code's search")


def add_output_arguments(parser: argparse.ArgumentParser,
                         formats: Iterable[str] = ("table", "csv", "json")) -> None:
    """``--format`` (choices: the command's report formatters, e.g. ``FORMATTERS.names()``) and
    ``--out``."""
    parser.add_argument("--format", choices=formats, default="table", metavar="FORMAT",
                        help="output format: %(choices)s (default: %(default)s)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")


def network_from_args(args: argparse.Namespace) -> Network:
    if args.layer and args.model:
        raise ConfigError("give either a MODEL or --layer lists, not both")
    if args.layer:
        if args.input:
            raise ConfigError(f"--input {args.input} cannot be used with --layer: each --layer gives its "
                              f"own input size H,W")
        layers = [parse_layer_spec(t, name=f"layer{i + 1}") for i, t in enumerate(args.layer)]
        return Network("layers", tuple(layers), source="--layer")
    if not args.model:
        raise ConfigError(f"no network given: name a MODEL ({', '.join(builtin_names())}) or use --layer")
    return load_network(args.model, parse_input_shape(args.input))


def array_from_args(args: argparse.Namespace) -> ArraySpec:
    return parse_array(args.array, cell_bits=args.cell_bits, weight_bits=args.weight_bits)


def methods_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    if args.method == "all":  # every registered strategy, plugins included
        return tuple(strategy_names())
    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    for m in methods:
        if m not in strategy_names():
            raise ConfigError(f"--method {m!r} is unknown; allowed: all, {', '.join(strategy_names())}")
    return methods


def options_from_args(args: argparse.Namespace, network: Network) -> MappingOptions:
    geometry = cast(Geometry, args.geometry or network.geometry)  # MappingOptions validates it
    return MappingOptions(geometry=geometry, search=args.search)


def emit(text: str, out: str | None) -> None:
    """Print ``text``, or write it atomically to ``out`` (checked before the work by
    :func:`check_outputs`)."""
    from imcflow.io import atomic_write_text

    if out:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def to_json(obj: Any) -> str:
    """Standard JSON (non-finite floats as null; see :mod:`imcflow.io`)."""
    from imcflow.io import dumps_json

    return dumps_json(obj)


# ------------------------------------------------------------------------------------ output paths
# Every command declares its output paths with declare_outputs(); cli.main checks them all with
# check_outputs() before the handler runs, so a path that cannot be written is refused in one line
# before any work is done.

OutputList = Callable[[argparse.Namespace], list[tuple[str, Any, str]]]


def declare_outputs(parser: argparse.ArgumentParser, outputs: OutputList) -> None:
    """``outputs(args)`` lists ``(option, path or None, "file" | "dir")`` for the parsed arguments."""
    parser.set_defaults(output_paths=outputs)


def file_out(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """The common case: ``--out FILE`` (optional)."""
    return [("--out", args.out, "file")]


def input_files(args: argparse.Namespace) -> list[str]:
    """Files this command reads (the MODEL argument, or the .py of file.py:factory)."""
    files = []
    for model in (getattr(args, "model", None), getattr(args, "name", None)):  # network, preset file
        if model:
            files.append(model)
            head, sep, _ = model.rpartition(":")
            if sep and head.endswith(".py"):
                files.append(head)
    return files


def check_outputs(args: argparse.Namespace) -> None:
    """Check every declared output path (see :func:`declare_outputs`) before any work starts."""
    from imcflow.io import check_output_dir, check_output_file

    outputs = getattr(args, "output_paths", None)
    for option, path, kind in outputs(args) if outputs is not None else ():
        if path is None:
            continue
        if kind == "file":
            check_output_file(path, option, inputs=input_files(args))
        else:
            check_output_dir(path, option)
