"""Layer and network records: what a mapping, a simulator or a cost model needs to know of a network.

The layer model is torch-free and mapping-free: records are data, validated when built.

* :class:`ConvLayer` (:mod:`imcflow.layers.core`): one conv or linear layer, field names as
  ``torch.nn.Conv2d``; :class:`Network`: an ordered list of layer records.
* Composite layers, one module each, beside it: :class:`LowRankLayer` (:mod:`imcflow.layers.lowrank`),
  a conv replaced by its low-rank factors.

:data:`AnyLayer` is every record a :class:`Network` may hold. **Adding a composite layer** (epitome,
row-skipped, ...) is the same four steps low rank took: a frozen dataclass in ``layers/<name>.py`` with
the ConvLayer-like accessors reports read (``name``, ``kind``, ``in_channels``, ``out_channels``,
``kernel_size``, ``input_size``, ``output_size()``, ``weight_count``, ``macs``, ``to_dict()``), added to
:data:`AnyLayer` and :data:`COMPOSITE_LAYERS` here; its mapping registered with
:func:`imcflow.mapping.composite.register_composite`; its cost counts with
:func:`imcflow.cost.composite.register_composite`.
"""
from __future__ import annotations

from typing import TypeAlias

from imcflow.layers.core import (
    ConvLayer,
    LayerKind,
    Network,
    Pair,
    as_network,
    linear_layer,
    network_from_layers,
    parse_layer_spec,
)
from imcflow.layers.lowrank import LowRankLayer

#: Every layer record a Network may hold.
AnyLayer: TypeAlias = ConvLayer | LowRankLayer
#: The composite layer types (each is mapped factor by factor, see imcflow.mapping.composite).
COMPOSITE_LAYERS: tuple[type, ...] = (LowRankLayer,)

__all__ = ["AnyLayer", "COMPOSITE_LAYERS", "ConvLayer", "LayerKind", "LowRankLayer", "Network", "Pair",
           "as_network", "linear_layer", "network_from_layers", "parse_layer_spec"]
