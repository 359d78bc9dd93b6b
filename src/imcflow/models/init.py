"""Weight initialisation shared by the built-in models."""
from __future__ import annotations

from torch import nn


def kaiming_init_convs(model: nn.Module) -> None:
    """He (fan-out, ReLU) initialisation of every conv weight, as the ResNet papers train them."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
