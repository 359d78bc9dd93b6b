"""The torch frontend: turn any ``nn.Module`` plus an input shape into a :class:`~imcflow.layers.Network`.

One forward pass (batch 1, eval mode, ``torch.no_grad``, zeros) runs with forward hooks on every
module; each ``nn.Conv2d`` and ``nn.Linear`` call becomes one :class:`~imcflow.layers.ConvLayer` in
execution order, with the input H x W it really saw. Layer names are the modules' qualified names from
``named_modules()`` ("layer1.0.conv1", "fc"); a module called twice yields "name", "name#2", ...

Modules that own a weight tensor (a parameter with two or more dimensions) but are not Conv2d/Linear
(ConvTranspose, Conv1d/3d, Embedding, RNNs, a custom module calling ``F.conv2d`` on its own weight)
cannot be mapped: all of those that the forward pass calls are collected into one
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
from typing import Any

import torch
from torch import nn

from imcflow.errors import ConfigError, UnsupportedLayerError
from imcflow.layers import ConvLayer, Network, linear_layer

InputShape = Sequence[int]


def _conv_padding(module: nn.Conv2d, name: str) -> tuple[tuple[int, int], str | None]:
    """Symmetric (pad_h, pad_w) of a Conv2d, or a reason why it cannot be expressed."""
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


def _owns_weight_tensor(module: nn.Module) -> bool:
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


class _Recorder:
    """Forward hooks that turn module calls into ConvLayer records and collect unsupported modules."""

    def __init__(self, model: nn.Module, root_name: str) -> None:
        self.layers: list[ConvLayer] = []
        self.unsupported: dict[str, str] = {}  # qualified name -> description, first-call order
        self.problems: list[str] = []
        self._calls: dict[str, int] = {}
        self._handles: list[Any] = []
        for qname, module in model.named_modules():
            name = qname or root_name
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                self._handles.append(module.register_forward_hook(self._weight_hook(name),
                                                                  with_kwargs=True))
            elif _owns_weight_tensor(module):
                self._handles.append(module.register_forward_hook(self._unsupported_hook(name)))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()

    def _unique(self, name: str) -> str:
        n = self._calls.get(name, 0) + 1
        self._calls[name] = n
        return name if n == 1 else f"{name}#{n}"

    def _unsupported_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            shapes = [tuple(p.shape) for p in module.parameters(recurse=False) if p.dim() >= 2]
            self.unsupported.setdefault(name, f"{name} ({type(module).__name__}, weights {shapes})")
        return hook

    def _weight_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, torch.Tensor):
                self.problems.append(f"{name}: input is not a tensor")
                return
            layer_name = self._unique(name)
            bias = module.bias is not None
            if isinstance(module, nn.Linear):
                layer = linear_layer(layer_name, module.in_features, module.out_features, bias=bias)
                # A linear layer applied to a sequence (N, T, F) performs T matrix-vector products.
                positions = 1
                for d in x.shape[1:-1]:
                    positions *= int(d)
                if positions > 1:
                    layer = layer.with_changes(input_size=(1, positions))
                self.layers.append(layer)
                return
            if x.dim() != 4:
                self.problems.append(f"{name}: Conv2d input has shape {tuple(x.shape)}, expected NCHW")
                return
            padding, reason = _conv_padding(module, name)
            if reason:
                self.unsupported.setdefault(name, reason)
                return
            self.layers.append(ConvLayer(
                layer_name, module.in_channels, module.out_channels, tuple(module.kernel_size),
                input_size=(int(x.shape[2]), int(x.shape[3])), stride=tuple(module.stride),
                padding=padding, dilation=tuple(module.dilation), groups=module.groups, bias=bias))
        return hook


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


def trace_module(model: nn.Module, input_shape: InputShape, name: str = "model",
                 source: str = "torch") -> Network:
    """Trace ``model`` on a zero input of ``input_shape`` (without batch) into a Network.

    >>> net = trace_module(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(),
    ...                                  nn.Linear(8 * 4 * 4, 10)), (3, 4, 4), "tiny")
    >>> [(l.name, l.kind, l.H, l.W, l.IC, l.OC) for l in net.layers]
    [('0', 'conv', 4, 4, 3, 8), ('2', 'linear', 1, 1, 128, 10)]
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape, name)
    recorder = _Recorder(model, root_name=name)
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
        recorder.remove()
        model.train(was_training)
    if recorder.unsupported:
        offenders = list(recorder.unsupported.values())
        raise UnsupportedLayerError(
            f"{name}: {len(offenders)} layer(s) with weights cannot be mapped onto crossbars "
            f"(only Conv2d and Linear are supported): {'; '.join(offenders)}")
    if error is not None:
        raise ConfigError(f"{name}: forward pass on input shape {'x'.join(map(str, shape))} failed: "
                          f"{type(error).__name__}: {error}") from None
    if recorder.problems:
        raise ConfigError(f"{name}: cannot trace: {'; '.join(recorder.problems)}")
    if not recorder.layers:
        raise ConfigError(f"{name}: the forward pass called no Conv2d or Linear layer; nothing to map")
    meta: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters())}
    if isinstance(output, torch.Tensor):
        meta["output_shape"] = tuple(int(d) for d in output.shape[1:])
    return Network(name=name, layers=tuple(recorder.layers), input_shape=shape, source=source,
                   geometry="real", meta=meta)


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
