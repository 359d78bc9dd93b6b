"""Turn what a user names (a built-in model, a published layer list, a file) into a :class:`Network`.

Every command that takes a network resolves it here, so all of them accept the same arguments.
Two registries (:class:`~imcflow.registry.Registry`): :data:`BUILTINS` by name (the published layer
lists of :mod:`.paper`, then the built-in PyTorch models, whose layer lists come from the torch-free
cache of :mod:`.builtin`) and :data:`FILE_LOADERS` by file suffix (each imports its frontend module
only when called). Nothing here imports torch until a model is traced at an input shape the cache
does not hold, or a ``file.py:factory`` is loaded.

Imports point one way: this package may import :mod:`imcflow.frontends` and :mod:`imcflow.models`
(lazily, when loading); neither of those imports this package.

=========  ===========================================  ===========================================
suffix     module                                       what it reads
=========  ===========================================  ===========================================
.onnx      :mod:`imcflow.frontends.onnx_import`         ONNX model (external data, shape inference)
.csv       :mod:`imcflow.frontends.neurosim`            NeuroSim NetWork.csv (padded convention)
.yaml/.yml :mod:`imcflow.frontends.netfile`             the plain network file
.json      :mod:`imcflow.frontends.netfile`             the plain network file
=========  ===========================================  ===========================================
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from imcflow.errors import ConfigError, UnknownNameError
from imcflow.layers import Network
from imcflow.networks.builtin import builtin_model_names, builtin_network
from imcflow.networks.paper import PAPER_NETWORKS
from imcflow.registry import Registry
from imcflow.validate import check_int, check_type

InputShape = tuple[int, ...] | None
Loader = Callable[[str, InputShape], Network]

#: name -> factory(input_shape) -> Network
BUILTINS: Registry[Callable[[InputShape], Network]] = Registry("network")
#: file suffix (".onnx", ".csv", ...) -> loader(path, input_shape) -> Network
FILE_LOADERS: Registry[Loader] = Registry("network file suffix", normalize=str.lower)


# Built-in names and file suffixes whose layer list fixes every size: an input shape given to them
# would be silently ignored, so it is refused instead.
_FIXED_SIZE: set[str] = set()


def register_builtin(name: str, factory: Callable[[InputShape], Network], takes_input: bool = True, *,
                     replace: bool = False) -> None:
    """Make ``load_network(name)`` (and ``imcflow map NAME``) return ``factory(input_shape)``.
    ``takes_input=False``: the network's sizes are fixed and an input shape is refused."""
    BUILTINS.register(name, factory, replace=replace)
    (_FIXED_SIZE.discard if takes_input else _FIXED_SIZE.add)(name)


def register_file_loader(suffix: str, loader: Loader, takes_input: bool = True, *,
                         replace: bool = False) -> None:
    """Make ``load_network("x" + suffix)`` call ``loader(path, input_shape)``. ``takes_input=False``:
    files of this kind list every size and an input shape is refused."""
    FILE_LOADERS.register(suffix, loader, replace=replace)
    (_FIXED_SIZE.discard if takes_input else _FIXED_SIZE.add)(suffix.lower())


def _refuse_input(what: str, key: str, input_shape: InputShape) -> None:
    if input_shape is not None and key in _FIXED_SIZE:
        raise ConfigError(f"{what} lists every layer's size; an input shape "
                          f"({'x'.join(map(str, input_shape))}) would be ignored: drop --input")


def lazy_loader(module: str, function: str) -> Loader:
    """A loader that imports ``module`` (and its heavy dependency) on its first call only."""
    def load(path: str, input_shape: InputShape) -> Network:
        return getattr(importlib.import_module(module), function)(path, input_shape)

    load.__name__ = load.__qualname__ = function
    load.__doc__ = f"Load a network file with :func:`{module}.{function}` (imported on first use)."
    return load


def _paper_factory(make: Callable[[], Network]) -> Callable[[InputShape], Network]:
    def load(input_shape: InputShape) -> Network:
        return make()  # a published layer list has one input size: the one it was printed for

    return load


def _model_factory(name: str) -> Callable[[InputShape], Network]:
    def load(input_shape: InputShape) -> Network:
        return builtin_network(name, input_shape)

    return load


for _name, _paper in PAPER_NETWORKS.items():
    register_builtin(_name, _paper_factory(_paper), takes_input=False)
for _model in builtin_model_names():
    register_builtin(_model, _model_factory(_model))
for _suffix, _module, _function in (
        (".onnx", "imcflow.frontends.onnx_import", "load_onnx"),
        (".csv", "imcflow.frontends.neurosim", "read_neurosim_csv"),
        (".yaml", "imcflow.frontends.netfile", "read_network_file"),
        (".yml", "imcflow.frontends.netfile", "read_network_file"),
        (".json", "imcflow.frontends.netfile", "read_network_file")):
    # A NetWork.csv lists every size itself (no input shape to take).
    register_file_loader(_suffix, lazy_loader(_module, _function), takes_input=_suffix != ".csv")


def builtin_names() -> list[str]:
    return sorted(BUILTINS.names())


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
    if spec in BUILTINS:
        _refuse_input(f"network {spec!r}", spec, input_shape)
        return BUILTINS.get(spec)(input_shape)
    if ".py:" in spec:
        path, factory = spec.rsplit(":", 1)
        from imcflow.frontends.torch_trace import load_python_factory  # torch needed from here on

        return load_python_factory(path, factory, input_shape)
    suffix = os.path.splitext(spec)[1].lower()
    if suffix:
        if suffix not in FILE_LOADERS:
            known = ", ".join(sorted(FILE_LOADERS.names()) + [".py:factory"])
            raise ConfigError(f"no loader for {suffix!r} files ({spec}); supported: {known}")
        if not os.path.exists(spec):
            raise ConfigError(f"network file not found: {spec}")
        _refuse_input(f"{spec} ({suffix} file)", suffix, input_shape)
        return FILE_LOADERS.get(suffix)(spec, input_shape)
    raise UnknownNameError(f"unknown network {spec!r}; built-in: {', '.join(builtin_names())}; "
                           f"or give a file (.py:factory with --input, or a network file)")
