"""Arguments every network-taking command shares, and output writing. No logic beyond parsing."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec, parse_array
from imcflow.layers import Network, parse_layer_spec
from imcflow.mapping import DEFAULT_METHODS, MappingOptions, strategy_names
from imcflow.networks import builtin_names, load_network, parse_input_shape


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
    parser.add_argument("--geometry", choices=("real", "paper"), default=None,
                        help="real: true stride/padding (default for models); paper: stride-1 valid "
                             "conv on the listed HxW (default for the published layer lists)")
    parser.add_argument("--search", choices=("optimal", "paper"), default="optimal",
                        help="VW-SDK search: exhaustive optimum, or the published code's search")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")


def network_from_args(args: argparse.Namespace) -> Network:
    if args.layer and args.model:
        raise ConfigError("give either a MODEL or --layer lists, not both")
    if args.layer:
        layers = [parse_layer_spec(t, name=f"layer{i + 1}") for i, t in enumerate(args.layer)]
        return Network("layers", tuple(layers), source="--layer")
    if not args.model:
        raise ConfigError(f"no network given: name a MODEL ({', '.join(builtin_names())}) or use --layer")
    return load_network(args.model, parse_input_shape(args.input))


def array_from_args(args: argparse.Namespace) -> ArraySpec:
    return parse_array(args.array, cell_bits=args.cell_bits, weight_bits=args.weight_bits)


def methods_from_args(args: argparse.Namespace) -> tuple[str, ...]:
    if args.method == "all":
        return DEFAULT_METHODS
    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    for m in methods:
        if m not in strategy_names():
            raise ConfigError(f"--method {m!r} is unknown; allowed: all, {', '.join(strategy_names())}")
    return methods


def options_from_args(args: argparse.Namespace, network: Network) -> MappingOptions:
    return MappingOptions(geometry=args.geometry or network.geometry, search=args.search)


def emit(text: str, out: str | None) -> None:
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)
