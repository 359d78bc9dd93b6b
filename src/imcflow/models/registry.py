"""The built-in model registry: names -> PyTorch factories and default inputs.

``create_model("resnet20", num_classes=10, in_channels=1)`` builds a trainable module. Layer lists of
these models (what ``imcflow map resnet18`` uses) come from :mod:`imcflow.networks.builtin`: a
torch-free cache at each model's default input, traced on demand at other inputs. This package imports
neither :mod:`imcflow.networks` nor :mod:`imcflow.frontends`.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from imcflow.errors import ConfigError
from imcflow.models import mobilenet, resnet_cifar, resnet_imagenet, small, vgg
from imcflow.registry import Registry
from imcflow.validate import check_int, check_type

IMAGENET = (3, 224, 224)
CIFAR = (3, 32, 32)


@dataclass(frozen=True)
class ModelSpec:
    """One built-in model: its factory, the input it is built for and what it is."""

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str

    @property
    def sized(self) -> bool:
        """True when the architecture depends on the input H x W (its factory takes ``input_size``)."""
        return "input_size" in inspect.signature(self.factory).parameters

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "description": self.description}


_SPECS = [
    ModelSpec("resnet18", resnet_imagenet.resnet18, IMAGENET, 1000, "ResNet-18, ImageNet"),
    ModelSpec("resnet34", resnet_imagenet.resnet34, IMAGENET, 1000, "ResNet-34, ImageNet"),
    ModelSpec("resnet50", resnet_imagenet.resnet50, IMAGENET, 1000, "ResNet-50 (bottleneck), ImageNet"),
    ModelSpec("vgg11", vgg.vgg11, IMAGENET, 1000, "VGG-11 (config A), ImageNet"),
    ModelSpec("vgg13", vgg.vgg13, IMAGENET, 1000, "VGG-13 (config B), ImageNet"),
    ModelSpec("vgg16", vgg.vgg16, IMAGENET, 1000, "VGG-16 (config D), ImageNet"),
    ModelSpec("mobilenetv2", mobilenet.mobilenetv2, IMAGENET, 1000, "MobileNetV2 width 1.0, ImageNet"),
    ModelSpec("resnet20", resnet_cifar.resnet20, CIFAR, 10, "ResNet-20, CIFAR (1x1 conv shortcuts)"),
    ModelSpec("resnet20-wide", resnet_cifar.resnet20_wide, CIFAR, 10,
              "ResNet-20 at 64/128/256 channels (the VWC-SDK authors' ResNet-20)"),
    ModelSpec("resnet32", resnet_cifar.resnet32, CIFAR, 10, "ResNet-32, CIFAR (1x1 conv shortcuts)"),
    ModelSpec("resnet56", resnet_cifar.resnet56, CIFAR, 10, "ResNet-56, CIFAR (1x1 conv shortcuts)"),
    ModelSpec("wrn16-4", resnet_cifar.wrn16_4, CIFAR, 10, "Wide ResNet 16-4, pre-activation, CIFAR"),
    ModelSpec("vgg8-cifar", vgg.vgg8_cifar, CIFAR, 10, "VGG-8 of DNN+NeuroSim, 32x32"),
    ModelSpec("vgg16-cifar", vgg.vgg16_cifar, CIFAR, 10, "VGG-16 with batch norm, 32x32"),
    ModelSpec("cnn8", small.cnn8, (3, 40, 40), 10, "CNN-8 of the VWC-SDK SVHN experiments"),
    ModelSpec("smallcnn-28", small.smallcnn28, (1, 28, 28), 10, "two-conv CNN, 28x28 digits"),
    ModelSpec("smallcnn-8", small.smallcnn8, (1, 8, 8), 10, "two-conv CNN, 8x8 digits"),
]
MODELS: Registry[ModelSpec] = Registry("model", {s.name: s for s in _SPECS})


def model_names() -> list[str]:
    """Names of the built-in PyTorch models, in a stable (registration) order."""
    return MODELS.names()


def get_spec(name: str) -> ModelSpec:
    return MODELS.get(name)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The C x H x W input a built-in model is built for, e.g. (3, 224, 224) for resnet18."""
    return get_spec(name).input_shape


def create_model(name: str, num_classes: int | None = None, in_channels: int | None = None,
                 input_size: tuple[int, int] | None = None, **kw: Any) -> nn.Module:
    """Build a built-in model (fresh, randomly initialised weights).

    ``input_size`` (H, W) matters only to models whose layers depend on it (vgg8-cifar, cnn8,
    smallcnn-*); the others accept any size their pooling allows. Extra keywords go to the factory
    (e.g. ``dropout`` for wrn16-4).

    >>> m = create_model("resnet20", num_classes=10, in_channels=1)
    >>> m.conv1.in_channels, m.fc.out_features
    (1, 10)
    """
    check_type("model name", name, str, hint=f"one of {', '.join(model_names())}")
    spec = get_spec(name)
    args: dict[str, Any] = {
        "num_classes": spec.num_classes if num_classes is None else num_classes,
        "in_channels": spec.input_shape[0] if in_channels is None else in_channels,
    }
    for field in ("num_classes", "in_channels"):
        if isinstance(args[field], bool) or not isinstance(args[field], int) or args[field] < 1:
            raise ConfigError(f"model {name!r}: {field} must be a positive integer, got {args[field]!r}")
    if spec.sized:
        if input_size is not None and not (isinstance(input_size, (tuple, list)) and len(input_size) == 2):
            raise ConfigError(f"model {name!r}: input_size must be a pair (H, W) of positive integers, "
                              f"got {input_size!r}")
        args["input_size"] = (spec.input_shape[1:] if input_size is None else
                              tuple(check_int("input_size", v, 1, where=f"model {name!r}")
                                    for v in input_size))
    allowed = set(inspect.signature(spec.factory).parameters) - set(args)
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ConfigError(f"model {name!r}: unknown option(s) {unknown}; allowed: "
                          f"{sorted(allowed) or 'none'}")
    return spec.factory(**args, **kw)
