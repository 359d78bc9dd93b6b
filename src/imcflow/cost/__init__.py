"""The hardware cost model (torch-free): exact event counts from a mapping plan, per-event energy and
per-instance area of each component from a cited preset, and their sums per layer and network.

    counts.py      LayerCounts: activations, rows/columns, conversions, ... of one mapped layer
    components.py  energy/area/latency of cells, DAC, S+H, ADC, shift-add, accumulators, buffers
    model.py       cost_layer / cost_mapping / cost_network
    results.py     LayerCost, NetworkCost (to_dict / to_frame)
"""
from imcflow.cost.components import COMPONENTS, Component, register_component
from imcflow.cost.counts import LayerCounts, TileShape, count_layer, tile_shapes
from imcflow.cost.model import (
                                CostSettings,
                                cost_layer,
                                cost_mapping,
                                cost_network,
                                layer_latency_s,
                                preset_array,
)
from imcflow.cost.results import MODES, CostFigures, LayerCost, NetworkCost

__all__ = ["COMPONENTS", "Component", "register_component", "LayerCounts", "TileShape", "count_layer",
           "tile_shapes", "CostSettings", "cost_layer", "cost_mapping",
           "cost_network", "layer_latency_s", "preset_array", "MODES", "CostFigures", "LayerCost",
           "NetworkCost"]
