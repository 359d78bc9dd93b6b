"""The torch frontend and the one torch tracer: turn an ``nn.Module`` into layer records.

Every part of imcflow that needs the layer list of a torch model gets it here: ``imcflow map`` (through
:func:`trace_module`), compression and deployment (:func:`trace_layers`) and the crossbar simulator
wrapper (:class:`CallLog`, fed by the wrapped layers as they run). One forward pass (batch 1, eval mode,
``torch.no_grad``, zeros) runs with forward hooks on every module; each ``nn.Conv2d`` and ``nn.Linear``
call (subclasses included, so quantized modules are found too) becomes one :class:`TracedLayer`
(name, module, :class:`~imcflow.layers.ConvLayer`) in execution order, with the input it really saw.

Rules (the same for every consumer):

* **Names** are the modules' qualified names from ``named_modules()`` ("layer1.0.conv1", "fc"). A
  module called k times in one forward pass is k layers, named "name", "name#2", ..., "name#k": each
  call is an execution with its own input size and its own cycles. The weights are the same module's,
  and imcflow does not share arrays between calls, so a preloaded network holds them once per call.
* **A Linear on a sequence** (input ``(N, T, F)``, or any ``(N, ..., F)``) performs T vector-matrix
  products: it is a linear layer on a ``T x 1`` map (``input_size=(T, 1)``), the ONNX importer's
  convention for a MatMul on an ``(N, T, K)`` activation.
* **Padding** ``'valid'`` is 0; ``'same'`` is resolved once, in :func:`conv_padding`: torch pads a
  total of ``d*(k-1)`` per axis, which is symmetric only for an odd total; an even kernel extent with
  ``'same'`` is unsupported.
* **Unsupported layers**: modules that own a weight tensor (a parameter with two or more dimensions)
  but are not Conv2d/Linear (ConvTranspose, Conv1d/3d, Embedding, RNNs, a custom module calling
  ``F.conv2d`` on its own weight) cannot be mapped. Every such module the forward pass calls, and every
  Conv2d with unrepresentable padding, is collected into one
  :class:`~imcflow.errors.UnsupportedLayerError`. Norm layers, PReLU and learned quantizer scales hold
  only vectors/scalars and are ignored (they are not crossbar matrices).

The model may live on the ``meta`` device: shapes flow through without allocating weights, which is
how the built-in ImageNet models are traced in milliseconds.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imcflow.errors import ConfigError, UnsupportedLayerError
from imcflow.layers import ConvLayer, Network, linear_layer

InputShape = Sequence[int]
#: The module types that become crossbar layers (subclasses included).
WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class TracedLayer:
    """One call of a crossbar layer: its ``name`` (``"fc"``, or ``"fc#2"`` for a second call), the
    ``module`` that ran (its weights are what the crossbars hold) and the ``layer`` record."""

    name: str
    module: nn.Conv2d | nn.Linear = field(compare=False, repr=False)
    layer: ConvLayer


def call_name(name: str, call: int) -> str:
    """The layer name of the ``call``-th call (1-based) of module ``name`` in one forward pass.

    >>> call_name("fc", 1), call_name("fc", 2)
    ('fc', 'fc#2')
    """
    return name if call == 1 else f"{name}#{call}"


def conv_padding(module: nn.Conv2d, name: str) -> tuple[tuple[int, int], str | None]:
    """Symmetric (pad_h, pad_w) of a Conv2d, or why it cannot be expressed (``padding='same'`` with
    an even kernel extent, where torch pads one pixel more at the end).

    >>> conv_padding(nn.Conv2d(1, 1, 5, padding="same", dilation=2), "c")
    ((4, 4), None)
    """
    pad = module.padding
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0), None
        # 'same': torch pads total = d*(k-1) per axis, the odd pixel going to the end.
        totals = [d * (k - 1) for k, d in zip(module.kernel_size, module.dilation, strict=True)]
        if any(t % 2 for t in totals):
            return (0, 0), (f"{name} (Conv2d with padding='same' and an even kernel extent: asymmetric "
                            f"padding {totals} is not representable)")
        return (totals[0] // 2, totals[1] // 2), None
    return (int(pad[0]), int(pad[1])), None


def _pair(value: Sequence[int]) -> tuple[int, int]:
    return int(value[0]), int(value[1])


def owns_weight_tensor(module: nn.Module) -> bool:
    """True when ``module`` itself holds a matrix-like parameter (two or more dimensions)."""
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


class CallLog:
    """The layer records of one forward pass, as the model calls its layers.

    :meth:`record` turns one call of a Conv2d/Linear into a :class:`TracedLayer` (naming repeated calls
    ``name#k``); :meth:`unsupported_call` notes a weight-owning module that cannot be mapped. Problems
    are collected, not raised, so one error can name all of them (:meth:`check`). :meth:`reset` starts
    a new forward pass. The tracer fills one from forward hooks; the simulator wrapper from its layers.
    """

    def __init__(self) -> None:
        self.records: list[TracedLayer] = []
        self.unsupported: dict[str, str] = {}  # qualified name -> description, first-call order
        self.problems: list[str] = []
        self._calls: dict[str, int] = {}

    def reset(self) -> None:
        self.records.clear()
        self.unsupported.clear()
        self.problems.clear()
        self._calls.clear()

    def record(self, name: str, module: nn.Module, x: Any) -> TracedLayer | None:
        """The record of this call of ``module`` on input ``x``; None (and a problem noted) when the
        call cannot be mapped."""
        if not isinstance(x, torch.Tensor):
            self.problems.append(f"{name}: input is not a tensor")
            return None
        n = self._calls.get(name, 0) + 1
        self._calls[name] = n
        layer_name = call_name(name, n)
        bias = getattr(module, "bias", None) is not None
        if isinstance(module, nn.Linear):
            # A linear layer on (N, T, F) performs T vector-matrix products: a T x 1 map (as ONNX).
            positions = 1
            for d in x.shape[1:-1]:
                positions *= int(d)
            layer = linear_layer(layer_name, module.in_features, module.out_features, bias=bias)
            if positions > 1:
                layer = layer.with_changes(input_size=(positions, 1))
        elif isinstance(module, nn.Conv2d):
            if x.dim() != 4:
                self.problems.append(f"{name}: Conv2d input has shape {tuple(x.shape)}, expected NCHW")
                return None
            padding, reason = conv_padding(module, name)
            if reason:
                self.unsupported.setdefault(name, reason)
                return None
            layer = ConvLayer(
                layer_name, module.in_channels, module.out_channels, _pair(module.kernel_size),
                input_size=(int(x.shape[2]), int(x.shape[3])), stride=_pair(module.stride),
                padding=padding, dilation=_pair(module.dilation), groups=module.groups, bias=bias)
        else:
            self.unsupported_call(name, module)
            return None
        rec = TracedLayer(layer_name, module, layer)
        self.records.append(rec)
        return rec

    def unsupported_call(self, name: str, module: nn.Module) -> None:
        shapes = [tuple(p.shape) for p in module.parameters(recurse=False) if p.dim() >= 2]
        self.unsupported.setdefault(name, f"{name} ({type(module).__name__}, weights {shapes})")

    def check(self, model_name: str) -> None:
        """Raise one error naming every unsupported layer (then every other problem) seen so far."""
        if self.unsupported:
            offenders = list(self.unsupported.values())
            raise UnsupportedLayerError(
                f"{model_name}: {len(offenders)} layer(s) with weights cannot be mapped onto crossbars "
                f"(only Conv2d and Linear are supported): {'; '.join(offenders)}")
        if self.problems:
            raise ConfigError(f"{model_name}: cannot trace: {'; '.join(self.problems)}")


def attach_hooks(model: nn.Module, log: CallLog, root_name: str = "model") -> list[Any]:
    """Forward hooks that feed ``log`` from every call of ``model``'s weight layers (and flag the
    weight-owning modules that are not Conv2d/Linear); returns the handles (``handle.remove()``)."""
    handles: list[Any] = []
    for qname, module in model.named_modules():
        name = qname or root_name
        if isinstance(module, WEIGHT_LAYER_TYPES):
            def hook(m: nn.Module, args: tuple, kwargs: dict, output: Any, name: str = name) -> None:
                log.record(name, m, args[0] if args else kwargs.get("input"))
            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        elif owns_weight_tensor(module):
            def flag(m: nn.Module, inputs: tuple, output: Any, name: str = name) -> None:
                log.unsupported_call(name, m)
            handles.append(module.register_forward_hook(flag))
    return handles


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _check_shape(input_shape: InputShape, name: str) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) not in (1, 3) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                                       for s in shape):
        raise ConfigError(f"{name}: input shape must be CxHxW (or F for an MLP) with positive integers, "
                          f"got {input_shape!r}")
    return shape


def _trace(model: nn.Module, input_shape: InputShape, name: str) -> tuple[list[TracedLayer], Any]:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape, name)
    log = CallLog()
    handles = attach_hooks(model, log, root_name=name)
    was_training = model.training
    error: Exception | None = None
    output: Any = None
    try:
        model.eval()
        x = torch.zeros((1, *shape), device=_model_device(model))
        with torch.no_grad():
            output = model(x)
    except Exception as exc:  # the user's forward failed: report it in imcflow's terms below
        error = exc
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if log.unsupported:
        log.check(name)
    if error is not None:
        raise ConfigError(f"{name}: forward pass on input shape {'x'.join(map(str, shape))} failed: "
                          f"{type(error).__name__}: {error}") from None
    log.check(name)
    if not log.records:
        raise ConfigError(f"{name}: the forward pass called no Conv2d or Linear layer; nothing to map")
    return list(log.records), output


def trace_layers(model: nn.Module, input_shape: InputShape, name: str = "model") -> list[TracedLayer]:
    """Every Conv2d/Linear call of ``model`` on a zero input of ``input_shape`` (without batch), in
    execution order, as :class:`TracedLayer` records (see the module docstring for the rules).

    >>> seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 2 * 2, 10))
    >>> [(t.name, type(t.module).__name__, t.layer.H) for t in trace_layers(seq, (3, 4, 4))]
    [('0', 'Conv2d', 4), ('2', 'Linear', 1)]
    """
    return _trace(model, input_shape, name)[0]


def trace_module(model: nn.Module, input_shape: InputShape, name: str = "model",
                 source: str = "torch") -> Network:
    """Trace ``model`` on a zero input of ``input_shape`` (without batch) into a Network.

    >>> net = trace_module(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(),
    ...                                  nn.Linear(8 * 4 * 4, 10)), (3, 4, 4), "tiny")
    >>> [(l.name, l.kind, l.H, l.W, l.IC, l.OC) for l in net.layers]
    [('0', 'conv', 4, 4, 3, 8), ('2', 'linear', 1, 1, 128, 10)]
    """
    records, output = _trace(model, input_shape, name)
    meta: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters())}
    if isinstance(output, torch.Tensor):
        meta["output_shape"] = tuple(int(d) for d in output.shape[1:])
    return Network(name=name, layers=tuple(r.layer for r in records), input_shape=tuple(input_shape),
                   source=source, geometry="real", meta=meta)


def load_python_factory(path: str, factory: str, input_shape: InputShape | None) -> Network:
    """Import ``path`` (a .py file), call ``factory()`` and trace the module it returns.

    This is ``imcflow map path/to/model.py:factory --input 3x32x32``.
    """
    spec_text = f"{path}:{factory}"
    if input_shape is None:
        raise ConfigError(f"{spec_text}: --input CxHxW is required for a model file "
                          f"(e.g. --input 3x32x32)")
    if not os.path.isfile(path):
        raise ConfigError(f"model file not found: {path}")
    if not factory.isidentifier():
        raise ConfigError(f"{spec_text}: factory must be a Python name (file.py:factory), got {factory!r}")
    module_name = f"imcflow_user_model_{abs(hash(os.path.abspath(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{spec_text}: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    # The file may import its sibling modules, as it would when run as a script from its folder.
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a user file calling sys.exit() must not end imcflow
        sys.modules.pop(module_name, None)
        raise ConfigError(f"{spec_text}: importing {path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(folder)
    fn = getattr(module, factory, None)
    if fn is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(f"{spec_text}: {path} defines no {factory!r}; callables there: "
                          f"{', '.join(public) or 'none'}")
    if not callable(fn):
        raise ConfigError(f"{spec_text}: {factory!r} is a {type(fn).__name__}, not a callable")
    try:
        model = fn()
    except SystemExit as exc:
        raise ConfigError(f"{spec_text}: calling {factory}() called sys.exit({exc.code!r}) instead of "
                          f"returning a torch.nn.Module") from None
    except Exception as exc:
        raise ConfigError(f"{spec_text}: calling {factory}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec_text}: {factory}() must return a torch.nn.Module, "
                          f"got {type(model).__name__}")
    base = os.path.splitext(os.path.basename(path))[0]
    return trace_module(model, input_shape, name=f"{base}:{factory}", source=os.path.abspath(path))
