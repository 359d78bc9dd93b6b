"""CIFAR ResNets (He et al., CVPR 2016, section 4.2) and WRN-16-4 (Zagoruyko & Komodakis, BMVC 2016).

ResNet-20/32/56: a 3x3 stem of 16 channels and three stages of n = (depth-2)/6 basic blocks with 16, 32
and 64 channels (stride 2 at stages 2 and 3). ``resnet20-wide`` is ResNet-20 at 64/128/256 channels,
the width of the VWC-SDK authors' ResNet-20 tables. Where the shape changes the shortcut is a 1x1 conv + BN
(compression.md "group conventions"; the paper's option A zero-padding has no weights to map).

WRN-16-4: pre-activation blocks (BN-ReLU-conv), n = (16-4)/6 = 2 blocks per stage of 64/128/256
channels, dropout 0.3 between the two convs of a block, a 1x1 conv shortcut on the pre-activated input
where the shape changes (as in the authors' code), final BN-ReLU, global average pool and ``fc``.
"""
from __future__ import annotations

from torch import Tensor, nn

from imcflow.errors import ConfigError
from imcflow.models.init import kaiming_init_convs
from imcflow.models.resnet_imagenet import BasicBlock, conv1x1, conv3x3


class CifarResNet(nn.Module):
    layer1: nn.Sequential  # set by setattr in the stage loop
    layer2: nn.Sequential
    layer3: nn.Sequential

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ConfigError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(in_planes, planes, stride=2 if i > 0 and j == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        kaiming_init_convs(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


class WideBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 (+ shortcut)."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv3x3(planes, planes)
        self.shortcut = (conv1x1(in_planes, planes, stride)
                         if stride != 1 or in_planes != planes else None)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        # Where the shape changes, the authors' code feeds the pre-activated input to the shortcut.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    layer1: nn.Sequential  # set by setattr in the stage loop
    layer2: nn.Sequential
    layer3: nn.Sequential

    def __init__(self, depth: int = 16, widen: int = 4, num_classes: int = 10, in_channels: int = 3,
                 dropout: float = 0.3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ConfigError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = conv3x3(in_channels, 16)
        in_planes = 16
        for i, planes in enumerate((16 * widen, 32 * widen, 64 * widen)):
            stage = []
            for j in range(n):
                stage.append(WideBlock(in_planes, planes, 2 if i > 0 and j == 0 else 1, dropout))
                in_planes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        kaiming_init_convs(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.fc(self.avgpool(self.relu(self.bn(x))).flatten(1))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(20, num_classes, in_channels)


def resnet20_wide(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    """ResNet-20 at 64/128/256 channels: the network of the VWC-SDK authors' ResNet-20 tables
    (djwhsdj/VWC-SDK README: conv IC/OC 64, 128, 256 on CIFAR-10)."""
    return CifarResNet(20, num_classes, in_channels, widths=(64, 128, 256))


def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(32, num_classes, in_channels)


def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(56, num_classes, in_channels)


def wrn16_4(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.3) -> WideResNet:
    return WideResNet(16, 4, num_classes, in_channels, dropout)
