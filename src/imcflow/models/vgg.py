"""VGG networks: VGG-11/13/16 for ImageNet (Simonyan & Zisserman, ICLR 2015) and VGG-8/16 for 32x32.

ImageNet: configurations A, B and D without batch norm, a 7x7 adaptive average pool and the standard
classifier 25088-4096-4096-classes with ReLU and dropout 0.5 (torchvision's layout and names,
``features.N`` / ``classifier.N``).

32x32 inputs: ``vgg16-cifar`` is configuration D with batch norm and one linear layer 512-classes (the
common CIFAR variant). ``vgg8-cifar`` is the VGG-8 of DNN+NeuroSim (Peng et al., IEDM 2019):
128-128-M-256-256-M-512-512-M convs and FC 8192-1024-classes (batch norm added for trainability; it
holds no crossbar weights). Its first FC is sized from the input, so other input sizes work too.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from imcflow.errors import ConfigError

# A VGG-style stack: an int is a 3x3/1/1 conv with that many output channels, "M" a 2x2 max-pool.
StackSpec = Sequence[int | str]


def conv_stack(spec: StackSpec, in_channels: int, batch_norm: bool) -> nn.Sequential:
    """``[64, "M", 128]`` -> Conv3x3(64) [BN] ReLU, MaxPool2x2, Conv3x3(128) [BN] ReLU."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in spec:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        assert isinstance(item, int)  # the specs are constants of this package, not user input
        layers.append(nn.Conv2d(channels, item, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


IMAGENET_CONFIGS: dict[str, StackSpec] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
VGG8_CIFAR: StackSpec = [128, 128, "M", 256, 256, "M", 512, 512, "M"]


class VGG(nn.Module):
    """``features`` (a conv stack), ``avgpool``, then a ``classifier`` of linear layers."""

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU (and dropout) between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _imagenet_vgg(config: str, num_classes: int, in_channels: int) -> VGG:
    return VGG(conv_stack(IMAGENET_CONFIGS[config], in_channels, batch_norm=False),
               nn.AdaptiveAvgPool2d((7, 7)), _mlp([512 * 7 * 7, 4096, 4096, num_classes], 0.5))


def vgg11(num_classes: int = 1000, in_channels: int = 3) -> VGG:
    return _imagenet_vgg("vgg11", num_classes, in_channels)


def vgg13(num_classes: int = 1000, in_channels: int = 3) -> VGG:
    return _imagenet_vgg("vgg13", num_classes, in_channels)


def vgg16(num_classes: int = 1000, in_channels: int = 3) -> VGG:
    return _imagenet_vgg("vgg16", num_classes, in_channels)


def vgg16_cifar(num_classes: int = 10, in_channels: int = 3) -> VGG:
    return VGG(conv_stack(IMAGENET_CONFIGS["vgg16"], in_channels, batch_norm=True),
               nn.AdaptiveAvgPool2d(1), _mlp([512, num_classes], 0.0))


def vgg8_cifar(num_classes: int = 10, in_channels: int = 3,
               input_size: tuple[int, int] = (32, 32)) -> VGG:
    h, w = (n // 8 for n in input_size)  # three 2x2 max-pools
    if h < 1 or w < 1:
        raise ConfigError(f"vgg8-cifar: input {input_size[0]}x{input_size[1]} is too small for its "
                          f"three 2x2 pooling steps; it needs at least 8x8")
    return VGG(conv_stack(VGG8_CIFAR, in_channels, batch_norm=True), nn.Identity(),
               _mlp([512 * h * w, 1024, num_classes], 0.0))
