"""The plain network file: a YAML or JSON list of layers a user can write by hand (read and write).

Schema (documented for users in README.md, "Bring your own network")::

    name: my_net              # optional; default: the file name without suffix
    input: [3, 32, 32]        # optional C, H, W (or "3x32x32"): the first layer's defaults
    geometry: real            # optional: real (default) or paper
    layers:                   # required, at least one
      - name: conv1           # required, unique
        kind: conv            # conv (default), linear, or lowrank (with rank: below)
        input_size: 32        # H or [H, W]; default: the previous layer's output size
        in_channels: 3        # default: the previous layer's out_channels (first layer: input C)
        out_channels: 64      # required
        kernel_size: 3        # K or [Kh, Kw]; required for conv, 1 for linear
        stride: 1             # optional, default 1 (int or pair)
        padding: 1            # optional, default 0 (int or pair)
        dilation: 1           # optional, default 1 (int or pair)
        groups: 1             # optional, default 1
        bias: false           # optional
        rank: 8               # lowrank only: the rank k of each group's factors (required)
        rank_groups: 1        # lowrank only: g groups (group low-rank), default 1
        split: input          # lowrank only: groups split input (default) or output channels
        combine: sum          # lowrank only: layer cycles = R + L (sum, default) or max (pipelined)

A linear layer defaults to a 1x1 input (one vector-matrix product); ``in_features`` / ``out_features``
and the paper names ``H, W, IC, OC, Kh, Kw`` are accepted as aliases. Every error names the file, the
layer and the field.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from imcflow.errors import ConfigError, FormatError
from imcflow.layers import AnyLayer, ConvLayer, LowRankLayer, Network
from imcflow.registry import Registry
from imcflow.validate import check_file

_TOP_KEYS = ("name", "input", "geometry", "source", "layers")
_LOWRANK_KEYS = ("rank", "rank_groups", "split", "combine")
_LAYER_KEYS = ("name", "kind", "input_size", "in_channels", "out_channels", "kernel_size", "stride",
               "padding", "dilation", "groups", "bias") + _LOWRANK_KEYS
# alias -> (canonical field, position inside a pair or None)
_ALIASES: dict[str, tuple[str, int | None]] = {
    "in_features": ("in_channels", None), "out_features": ("out_channels", None),
    "IC": ("in_channels", None), "OC": ("out_channels", None),
    "H": ("input_size", 0), "W": ("input_size", 1), "Kh": ("kernel_size", 0), "Kw": ("kernel_size", 1),
}


def parse_network_document(doc: Any, source: str = "<document>", default_name: str = "network") -> Network:
    """Build a :class:`Network` from an already-parsed YAML/JSON document.

    >>> net = parse_network_document({"input": [3, 8, 8], "layers": [
    ...     {"name": "c1", "out_channels": 4, "kernel_size": 3, "padding": 1},
    ...     {"name": "c2", "out_channels": 8, "kernel_size": 3, "stride": 2}]})
    >>> net.layers[1].input_size, net.layers[1].in_channels, net.layers[1].output_size()
    ((8, 8), 4, (3, 3))
    """
    if doc is None:
        raise FormatError(f"{source}: the file is empty; expected a mapping with a 'layers' list")
    if not isinstance(doc, dict):
        raise FormatError(f"{source}: top level must be a mapping with a 'layers' list, "
                          f"got {type(doc).__name__}")
    unknown = sorted(set(map(str, doc)) - set(_TOP_KEYS))
    if unknown:
        raise FormatError(f"{source}: unknown top-level field(s) {unknown}; allowed: {', '.join(_TOP_KEYS)}")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list) or not layers_doc:
        raise FormatError(f"{source}: 'layers' must be a non-empty list of layers, got {layers_doc!r}")
    input_shape = _input_shape(doc.get("input"), source)
    prev_channels = input_shape[0] if input_shape and len(input_shape) == 3 else None
    prev_size = tuple(input_shape[1:]) if input_shape and len(input_shape) == 3 else None
    layers = []
    for index, entry in enumerate(layers_doc):
        layer = _parse_layer(entry, index, source, prev_channels, prev_size)
        layers.append(layer)
        prev_channels, prev_size = layer.out_channels, layer.output_size()
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise FormatError(f"{source}: 'name' must be a non-empty string, got {name!r}")
    geometry = doc.get("geometry", "real")
    try:
        # The file is the source; a 'source' it declares (where its layers came from) is kept in meta.
        meta = {"format": "netfile", "declared_source": doc.get("source")}
        return Network(name, tuple(layers), input_shape=input_shape, source=source, geometry=geometry,
                       meta=meta)
    except FormatError:
        raise
    except ConfigError as exc:
        raise FormatError(f"{source}: {exc}") from None


def _input_shape(value: Any, source: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        parts: Any = value.lower().split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        shape = tuple(_integer(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise FormatError(f"{source}: 'input' must be [C, H, W] (or [F]) with positive integers, "
                          f"got {value!r}")
    return shape


def _integer(value: Any) -> int:
    """An int from an int or a decimal string; floats and bools are refused (they hide typos)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(value)


def _parse_layer(entry: Any, index: int, source: str, prev_channels: int | None,
                 prev_size: tuple[int, ...] | None) -> AnyLayer:
    where = f"{source}: layer {index + 1}"
    if not isinstance(entry, dict):
        raise FormatError(f"{where}: must be a mapping of fields, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise FormatError(f"{where}: field 'name' is required and must be a non-empty string, got {name!r}")
    where = f"{source}: layer {name!r}"
    fields = _canonical_fields(entry, where)
    kind = fields.setdefault("kind", "conv")
    if kind not in ("conv", "linear", "lowrank"):
        raise FormatError(f"{where}: field 'kind' must be 'conv', 'linear' or 'lowrank', got {kind!r}")
    lowrank = {k: fields.pop(k) for k in _LOWRANK_KEYS if k in fields}
    if kind != "lowrank" and lowrank:
        raise FormatError(f"{where}: field(s) {sorted(lowrank)} only apply to kind: lowrank")
    if kind == "lowrank" and "rank" not in lowrank:
        raise FormatError(f"{where}: field 'rank' is required for a lowrank layer")
    if "out_channels" not in fields:
        raise FormatError(f"{where}: field 'out_channels' is required")
    if "in_channels" not in fields:
        if prev_channels is None:
            raise FormatError(f"{where}: field 'in_channels' is required (no previous layer or 'input' "
                              f"to take it from)")
        fields["in_channels"] = prev_channels
    if kind == "linear":
        fields.setdefault("kernel_size", 1)
        fields.setdefault("input_size", 1)
    elif "kernel_size" not in fields:
        raise FormatError(f"{where}: field 'kernel_size' is required for a conv layer")
    if "input_size" not in fields:
        if prev_size is None:
            raise FormatError(f"{where}: field 'input_size' is required (no previous layer or 'input' "
                              f"to take it from)")
        fields["input_size"] = list(prev_size)
    for key, value in fields.items():
        if key in ("name", "kind", "bias"):
            continue
        fields[key] = _int_field(key, value, where)
    bias = fields.get("bias", False)
    if not isinstance(bias, bool):
        raise FormatError(f"{where}: field 'bias' must be true or false, got {bias!r}")
    try:
        if kind == "lowrank":
            conv = ConvLayer(**{**fields, "kind": "conv"})
            for key in ("rank", "rank_groups"):
                if key in lowrank:
                    lowrank[key] = _int_field(key, lowrank[key], where)
            return LowRankLayer.from_conv(conv, lowrank["rank"], lowrank.get("rank_groups", 1),
                                          lowrank.get("split", "input"), lowrank.get("combine", "sum"))
        return ConvLayer(**fields)
    except ConfigError as exc:
        # The layer records name the layer and the field already; add the file.
        raise FormatError(f"{source}: {exc}") from None


def _canonical_fields(entry: dict, where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    pairs: dict[str, list[Any]] = {}
    for key, value in entry.items():
        key = str(key)
        if key in _LAYER_KEYS:
            if key in fields or key in pairs:
                raise FormatError(f"{where}: field {key!r} is given twice (directly and by an alias)")
            fields[key] = value
        elif key in _ALIASES:
            target, pos = _ALIASES[key]
            if target in fields:
                raise FormatError(f"{where}: field {key!r} conflicts with {target!r}; give one of them")
            if pos is None:
                fields[target] = value
            else:
                pairs.setdefault(target, [None, None])[pos] = value
        else:
            allowed = ", ".join(_LAYER_KEYS + tuple(_ALIASES))
            raise FormatError(f"{where}: unknown field {key!r}; allowed: {allowed}")
    for target, (a, b) in pairs.items():
        if target in fields:
            raise FormatError(f"{where}: field {target!r} is also given by its aliases; give one form")
        if a is None or b is None:
            first, second = ("H", "W") if target == "input_size" else ("Kh", "Kw")
            raise FormatError(f"{where}: give both {first} and {second} (or {target!r})")
        fields[target] = [a, b]
    return fields


def _int_field(key: str, value: Any, where: str) -> int | list[int]:
    try:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ValueError(value)
            return [_integer(v) for v in value]
        return _integer(value)
    except ValueError:
        raise FormatError(f"{where}: field {key!r} must be an integer or a pair of integers, "
                          f"got {value!r}") from None


# --- reading files -------------------------------------------------------------------------------

def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FormatError(f"{source}{at}: not valid YAML: {problem}") from None


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{source}, line {exc.lineno} column {exc.colno}: not valid JSON: "
                          f"{exc.msg}") from None


_PARSERS: Registry[Callable[[str, str], Any]] = Registry(
    "network file suffix", {".yaml": _parse_yaml, ".yml": _parse_yaml, ".json": _parse_json})


def read_network_file(path: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """Load a ``.yaml``/``.yml``/``.json`` network file. ``input_shape`` (C,H,W) overrides ``input``."""
    path = check_file("path", path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _PARSERS:
        raise FormatError(f"{path}: a network file must end in {', '.join(_PARSERS.names())}")
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is accepted, as for CSV
            text = fh.read()
    except UnicodeDecodeError:
        raise FormatError(f"{path}: not a text file (expected {suffix[1:].upper()})") from None
    doc = _PARSERS[suffix](text, path)
    if input_shape is not None and isinstance(doc, dict):
        doc = {**doc, "input": list(input_shape)}
    return parse_network_document(doc, source=path, default_name=os.path.splitext(os.path.basename(path))[0])


# --- writing -------------------------------------------------------------------------------------

def _compact(pair: tuple[int, int]) -> int | list[int]:
    return pair[0] if pair[0] == pair[1] else list(pair)


def network_document(network: Network) -> dict[str, Any]:
    """The plain-file form of a network: every field explicit, so no defaults are needed to read it."""
    doc: dict[str, Any] = {"name": network.name}
    if network.input_shape:
        doc["input"] = list(network.input_shape)
    doc["geometry"] = network.geometry
    if network.source:
        doc["source"] = network.source
    doc["layers"] = [_layer_entry(l) for l in network.layers]
    return doc


def _layer_entry(l: Any) -> dict[str, Any]:
    entry = {
        "name": l.name, "kind": l.kind, "input_size": _compact(l.input_size),
        "in_channels": l.in_channels, "out_channels": l.out_channels,
        "kernel_size": _compact(l.kernel_size), "stride": _compact(l.stride),
        "padding": _compact(l.padding), "dilation": _compact(l.dilation), "groups": l.groups,
        "bias": l.bias,
    }
    if l.kind == "lowrank":
        entry.update(rank=l.rank, rank_groups=l.rank_groups, split=l.split, combine=l.combine)
    return entry


def network_to_yaml(network: Network) -> str:
    """YAML text of :func:`network_document`: one flow-style line per layer, easy to edit by hand."""
    import yaml

    doc = network_document(network)
    layers = doc.pop("layers")
    # Block style for the top-level fields (a flow-style mapping would swallow "layers:"), lists inline.
    head = "".join(f"{key}: {json.dumps(value)}\n" if isinstance(value, list)
                   else yaml.safe_dump({key: value}, default_flow_style=False, width=1000)
                   for key, value in doc.items())
    lines = [yaml.safe_dump(layer, sort_keys=False, default_flow_style=True, width=1000).strip()
             for layer in layers]
    return head + "layers:\n" + "".join(f"  - {line}\n" for line in lines)


def network_to_json(network: Network) -> str:
    return json.dumps(network_document(network), indent=2) + "\n"
