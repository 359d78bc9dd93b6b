"""Turn what a user names (a built-in model, a published layer list, a file) into a :class:`Network`.

Every command that takes a network resolves it here, so all of them accept the same arguments.
Loaders are registered by name (built-ins) or by file suffix (frontends); nothing here imports torch
until a torch model is actually asked for.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from imcflow.errors import ConfigError, UnknownNameError
from imcflow.layers import Network
from imcflow.networks.paper import PAPER_NETWORKS
from imcflow.validate import check_int, check_type

InputShape = tuple[int, ...] | None
# name -> factory(input_shape) -> Network
_BUILTINS: dict[str, Callable[[InputShape], Network]] = {
    name: (lambda shape, f=f: f()) for name, f in PAPER_NETWORKS.items()}
# file suffix (".onnx", ".csv", ...) -> loader(path, input_shape) -> Network
_FILE_LOADERS: dict[str, Callable[[str, InputShape], Network]] = {}
# Built-in names and file suffixes whose layer list fixes every size: an input shape given to them
# would be silently ignored, so it is refused instead.
_FIXED_SIZE: set[str] = set(PAPER_NETWORKS)
# Modules that register more loaders when imported (torch models, frontends). Imported lazily.
_PLUGIN_MODULES = ["imcflow.models.registry", "imcflow.frontends"]
_plugins_loaded = False


def register_builtin(name: str, factory: Callable[[InputShape], Network], takes_input: bool = True) -> None:
    """``takes_input=False``: the network's sizes are fixed and an input shape is refused."""
    _BUILTINS[name] = factory
    (_FIXED_SIZE.discard if takes_input else _FIXED_SIZE.add)(name)


def register_file_loader(suffix: str, loader: Callable[[str, InputShape], Network],
                         takes_input: bool = True) -> None:
    """``takes_input=False``: files of this kind list every size and an input shape is refused."""
    _FILE_LOADERS[suffix.lower()] = loader
    (_FIXED_SIZE.discard if takes_input else _FIXED_SIZE.add)(suffix.lower())


def _refuse_input(what: str, key: str, input_shape: InputShape) -> None:
    if input_shape is not None and key in _FIXED_SIZE:
        raise ConfigError(f"{what} lists every layer's size; an input shape "
                          f"({'x'.join(map(str, input_shape))}) would be ignored: drop --input")


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import importlib

    for mod in _PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            # A plugin module that does not exist yet (or torch not installed): its names are absent.
            if exc.name and (exc.name == mod or mod.startswith(exc.name) or exc.name == "torch"):
                continue
            raise


def builtin_names() -> list[str]:
    _load_plugins()
    return sorted(_BUILTINS)


def parse_input_shape(text: str | None) -> InputShape:
    """``"3x32x32"`` -> (3, 32, 32)."""
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--input must be CxHxW, e.g. 3x32x32; got {text!r}") from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ConfigError(f"--input must be CxHxW with positive sizes (or F for an MLP); got {text!r}")
    return shape


def _check_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3):
        raise ConfigError(f"input_shape must be (C, H, W) (or (F,) for an MLP), got {shape!r}")
    return tuple(check_int("input_shape", v, 1) for v in shape)


def load_network(spec: str, input_shape: InputShape = None) -> Network:
    """Resolve a built-in name, ``file.py:factory`` or a network file into a :class:`Network`.

    >>> load_network("resnet18-paper").layers[0].kernel_size
    (7, 7)
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    check_type("network", spec, str, hint="a built-in name, file.py:factory or a network file path")
    if input_shape is not None:
        input_shape = _check_shape(input_shape)
    _load_plugins()
    if spec in _BUILTINS:
        _refuse_input(f"network {spec!r}", spec, input_shape)
        return _BUILTINS[spec](input_shape)
    if ".py:" in spec:
        path, factory = spec.rsplit(":", 1)
        from imcflow.frontends.torch_trace import load_python_factory  # torch needed from here on

        return load_python_factory(path, factory, input_shape)
    suffix = os.path.splitext(spec)[1].lower()
    if suffix:
        if suffix not in _FILE_LOADERS:
            known = ", ".join(sorted(_FILE_LOADERS) + [".py:factory"])
            raise ConfigError(f"no loader for {suffix!r} files ({spec}); supported: {known}")
        if not os.path.exists(spec):
            raise ConfigError(f"network file not found: {spec}")
        _refuse_input(f"{spec} ({suffix} file)", suffix, input_shape)
        return _FILE_LOADERS[suffix](spec, input_shape)
    raise UnknownNameError(f"unknown network {spec!r}; built-in: {', '.join(builtin_names())}; "
                           f"or give a file (.py:factory with --input, or a network file)")
