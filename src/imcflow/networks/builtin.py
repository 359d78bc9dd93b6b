"""The built-in PyTorch models as layer lists, without torch: a cache of their traced layer lists.

``builtin_models.json`` beside this module holds, for every model of :mod:`imcflow.models`, its
default input shape, description and the layer list :func:`traced_network` gives at that shape
(keyed by model and input shape). ``load_network("resnet18")`` reads it, so mapping a built-in model
at its own input size never imports torch; any other input shape is traced (torch needed).

The cache is data generated from the models, never edited by hand: regenerate it after changing a
model or the tracer with ``python -m imcflow.networks``; ``tests/test_builtin_cache.py``
regenerates it in memory and compares it with the file, model by model.
"""
from __future__ import annotations

import json
from dataclasses import astuple, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from imcflow.errors import ConfigError, UnknownNameError
from imcflow.layers import ConvLayer, Network

CACHE_FILE = Path(__file__).with_name("builtin_models.json")
CACHE_FORMAT = 1


def shape_key(shape: tuple[int, ...]) -> str:
    """``(3, 224, 224)`` -> ``"3x224x224"`` (the cache's key for an input shape)."""
    return "x".join(str(d) for d in shape)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    with open(CACHE_FILE, encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("format") != CACHE_FORMAT or data.get("layer_fields") != _layer_fields():
        raise ConfigError(f"{CACHE_FILE}: written for another cache format or ConvLayer fields; "
                          f"regenerate it with 'python -m imcflow.networks'")
    return data["models"]


def _layer_fields() -> list[str]:
    return [f.name for f in fields(ConvLayer)]  # the order of a layer row in the cache


def builtin_model_names() -> list[str]:
    """The built-in PyTorch models, in :mod:`imcflow.models` order (read from the cache, no torch)."""
    return list(_catalog())


def model_input_shape(name: str) -> tuple[int, ...]:
    """The C x H x W input the built-in model ``name`` is built for."""
    try:
        return tuple(_catalog()[name]["input_shape"])
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; known models: "
                               f"{', '.join(builtin_model_names())}") from None


def _layer_row(layer: ConvLayer) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in astuple(layer)]


def _network_entry(network: Network) -> dict[str, Any]:
    meta = {k: list(v) if isinstance(v, tuple) else v for k, v in network.meta.items()}
    rows = []
    for layer in network.layers:
        if not isinstance(layer, ConvLayer):  # tracing gives plain layers; the cache stores only those
            raise ConfigError(f"{network.name}: layer {layer.name!r} is a {type(layer).__name__}; the "
                              f"built-in cache holds ConvLayer records only")
        rows.append(_layer_row(layer))
    return {"meta": meta, "layers": rows}


def _layer(row: list[Any]) -> ConvLayer:
    """A cache row (field values in ConvLayer's field order, pairs as lists) -> the record."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in zip(_layer_fields(), row, strict=True)}
    return ConvLayer(**values)


@lru_cache(maxsize=64)
def cached_network(name: str, shape: tuple[int, ...]) -> Network | None:
    """The cached layer list of model ``name`` at input ``shape``, or None if it is not cached."""
    entry = _catalog().get(name, {}).get("networks", {}).get(shape_key(shape))
    if entry is None:
        return None
    meta = {k: tuple(v) if isinstance(v, list) else v for k, v in entry["meta"].items()}
    layers = tuple(_layer(row) for row in entry["layers"])
    return Network(name=name, layers=layers, input_shape=shape, source="built-in", geometry="real",
                   meta=meta)


@lru_cache(maxsize=64)
def _traced(name: str, input_shape: tuple[int, ...]) -> Network:
    try:
        import torch  # the one place a built-in model is built: only for shapes the cache lacks
    except ImportError as exc:
        raise ConfigError(f"model {name!r} at input {shape_key(input_shape)} is not in the built-in "
                          f"cache (it holds {shape_key(model_input_shape(name))}); tracing it needs "
                          f"torch, which cannot be imported: {exc}") from None

    from imcflow.frontends.torch_trace import trace_module
    from imcflow.models.registry import create_model

    # Only shapes matter for a layer list: build on the meta device (no weight memory, no init cost).
    with torch.device("meta"):
        model = create_model(name, in_channels=input_shape[0], input_size=(input_shape[1], input_shape[2]))
    return trace_module(model, input_shape, name=name, source="built-in")


def _check_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) != 3:
        default = "x".join(map(str, model_input_shape(name)))
        raise ConfigError(f"model {name!r}: --input must be CxHxW (e.g. {default}), got "
                          f"{'x'.join(map(str, shape))}")
    return shape


def traced_network(name: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """Trace built-in model ``name`` at ``input_shape`` (default: its own) with torch, cached.

    >>> net = traced_network("resnet20")
    >>> len(net.layers), net.layers[0].name, net.layers[-1].name
    (22, 'conv1', 'fc')
    """
    from imcflow.models.registry import default_input_shape  # raises for unknown names

    shape = default_input_shape(name) if input_shape is None else tuple(input_shape)
    return _traced(name, _check_shape(name, shape))


def builtin_network(name: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """The layer list of built-in model ``name``: from the cache when it holds ``input_shape``
    (default: the model's own), else traced.

    >>> net = builtin_network("resnet18")
    >>> len(net.layers), net.layers[0].kernel_size
    (21, (7, 7))
    """
    shape = model_input_shape(name) if input_shape is None else tuple(input_shape)
    return cached_network(name, _check_shape(name, shape)) or _traced(name, shape)


def regenerate() -> dict[str, Any]:
    """Trace every built-in model at its default input shape: the cache's contents (needs torch)."""
    from imcflow.models.registry import MODELS

    models = {}
    for name, spec in MODELS.items():
        shape = tuple(spec.input_shape)
        models[name] = {"input_shape": list(shape), "description": spec.description,
                        "networks": {shape_key(shape): _network_entry(_traced(name, shape))}}
    return {"format": CACHE_FORMAT, "layer_fields": _layer_fields(),
            "generated_by": "python -m imcflow.networks (traced with imcflow.frontends."
                            "torch_trace); do not edit",
            "models": models}


def render_cache(catalog: dict[str, Any]) -> str:
    """The cache file's text: indented JSON with one line per layer (readable diffs)."""
    rows: list[str] = []

    def placeholder(entry: dict[str, Any]) -> dict[str, Any]:
        out = []
        for row in entry["layers"]:
            rows.append(json.dumps(row, separators=(",", ":")))
            out.append(f"@@{len(rows) - 1}@@")
        return {**entry, "layers": out}

    shown = {**catalog, "models": {
        name: {**m, "networks": {k: placeholder(v) for k, v in m["networks"].items()}}
        for name, m in catalog["models"].items()}}
    text = json.dumps(shown, indent=1)
    for i, row in enumerate(rows):
        text = text.replace(f'"@@{i}@@"', row, 1)
    return text + "\n"


def write_cache(path: Path = CACHE_FILE) -> Path:
    """Regenerate the cache file."""
    from imcflow.io import atomic_write_text

    atomic_write_text(path, render_cache(regenerate()))
    _catalog.cache_clear()
    cached_network.cache_clear()
    return path
