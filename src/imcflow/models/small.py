"""Small networks: the CNN-8 of the VWC-SDK experiments (SVHN) and a two-conv CNN for digit images.

``cnn8`` follows the SVHN network of the VWC-SDK authors' public code (djwhsdj/VWC-SDK,
``example/cifar_resnet.py``, class ``SVHNQ``, itself the DoReFa-Net SVHN model at expansion 4), as we
read it there; it is a reconstruction, not the authors' file. On the 3x40x40 input the authors use
(SVHN resized to 40), the eight weight layers are:

====== ======================== ========= ======
layer  conv                     input     output
====== ======================== ========= ======
conv1  3->24, 5x5, pad 0        40x40     36x36, then 2x2 max-pool -> 18x18
conv2  24->32, 3x3, pad 1       18x18     18x18
conv3  32->32, 3x3, pad 1       18x18     18x18, then 2x2 max-pool -> 9x9
conv4  32->64, 3x3, pad 0       9x9       7x7
conv5  64->64, 3x3, pad 1       7x7       7x7
conv6  64->64, 3x3, pad 0       7x7       5x5
conv7  64->256, 5x5, pad 0      5x5       1x1 (dropout 0.5 before it)
fc     256->classes             1         -
====== ======================== ========= ======

These are exactly the (H, K, IC, OC) rows the authors' pruning script lists for it: images
18/18/9/7/7/5, IC 24/32/32/64/64/64, OC 32/32/64/64/64/256, K 3/3/3/3/3/5. conv7 spans the whole
remaining map, so for another input size its kernel is that map's size (3x3 on a 32x32 input).
Convs 2-6 are followed by batch norm, every conv by ReLU.

``smallcnn``: conv3x3(16)-ReLU-[pool]-conv3x3(32)-ReLU-pool-fc, for 1x28x28 (MNIST-like, pooling
after both convs, fc 1568-classes) and 1x8x8 (sklearn digits, pooling after the second conv only,
fc 512-classes).
"""
from __future__ import annotations

from torch import Tensor, nn

from imcflow.errors import ConfigError


class CNN8(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 input_size: tuple[int, int] = (40, 40)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 5, bias=True)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(24, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv4, self.bn4 = nn.Conv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64)
        self.conv5, self.bn5 = nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.conv6, self.bn6 = nn.Conv2d(64, 64, 3, bias=False), nn.BatchNorm2d(64)
        self.dropout = nn.Dropout(0.5)
        # Map size before conv7: conv1 (5x5, no pad) and a pool, the pool after conv3, conv4 and conv6
        # (3x3, no pad) each take 2 pixels; 40 -> 18 -> 9 -> 5.
        h, w = (((n - 4) // 2) // 2 - 4 for n in input_size)
        if h < 1 or w < 1:
            raise ConfigError(f"cnn8: input {input_size[0]}x{input_size[1]} is too small; it needs at "
                              f"least 22x22 (the map before conv7 would be {h}x{w})")
        self.conv7 = nn.Conv2d(64, 256, (h, w), bias=False)  # covers the whole remaining map
        self.fc = nn.Linear(256, num_classes)

    def _trunk(self, x: Tensor) -> Tensor:
        x = self.relu(self.pool(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.pool(self.bn3(self.conv3(x))))
        x = self.relu(self.bn4(self.conv4(x)))
        x = self.relu(self.bn5(self.conv5(x)))
        return self.relu(self.bn6(self.conv6(x)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv7(self.dropout(self._trunk(x))))
        return self.fc(x.flatten(1))


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 input_size: tuple[int, int] = (28, 28), pool_first: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.pool1 = nn.MaxPool2d(2) if pool_first else nn.Identity()
        self.pool2 = nn.MaxPool2d(2)
        h, w = input_size
        if pool_first:
            h, w = h // 2, w // 2
        h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ConfigError(f"smallcnn: input {input_size[0]}x{input_size[1]} is too small for its "
                              f"{'two' if pool_first else 'one'} 2x2 pooling step(s)")
        self.fc = nn.Linear(32 * h * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.relu(self.conv1(x)))
        x = self.pool2(self.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def cnn8(num_classes: int = 10, in_channels: int = 3, input_size: tuple[int, int] = (40, 40)) -> CNN8:
    return CNN8(num_classes, in_channels, input_size)


def smallcnn28(num_classes: int = 10, in_channels: int = 1,
               input_size: tuple[int, int] = (28, 28)) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, input_size, pool_first=True)


def smallcnn8(num_classes: int = 10, in_channels: int = 1,
              input_size: tuple[int, int] = (8, 8)) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, input_size, pool_first=False)
