"""The published layer lists of mapping.md section 9 (paper geometry: stride-1 valid convolutions)."""
from __future__ import annotations

from imcflow.layers import ConvLayer, Network

# (input H=W, K, IC, OC) per row, as printed in the VW-SDK tables.
_VGG13 = [(224, 3, 3, 64), (224, 3, 64, 64), (112, 3, 64, 128), (112, 3, 128, 128),
          (56, 3, 128, 256), (56, 3, 256, 256), (28, 3, 256, 512), (28, 3, 512, 512),
          (14, 3, 512, 512), (14, 3, 512, 512)]  # the 14x14 row is counted twice in the totals
_RESNET18 = [(112, 7, 3, 64), (56, 3, 64, 64), (28, 3, 128, 128), (14, 3, 256, 256),
             (7, 3, 512, 512)]  # the five distinct layer shapes


def _network(name: str, rows: list[tuple[int, int, int, int]], source: str) -> Network:
    layers = tuple(ConvLayer(f"conv{i + 1}", ic, oc, k, input_size=h) for i, (h, k, ic, oc)
                   in enumerate(rows))
    return Network(name, layers, input_shape=(rows[0][2], rows[0][0], rows[0][0]), source=source,
                   geometry="paper")


def vgg13_paper() -> Network:
    return _network("vgg13-paper", _VGG13, "VW-SDK (DATE 2022) table, VGG13 on a 512x512 array")


def resnet18_paper() -> Network:
    return _network("resnet18-paper", _RESNET18,
                    "VW-SDK (DATE 2022) table, ResNet-18's five distinct conv shapes")


PAPER_NETWORKS = {"vgg13-paper": vgg13_paper, "resnet18-paper": resnet18_paper}
