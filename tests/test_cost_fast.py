"""The vectorised network totals equal the ordinary per-layer cost path on every strategy."""
import numpy as np
import pytest

from imcflow import ArraySpec, MappingOptions
from imcflow.cost import CostSettings, cost_mapping
from imcflow.cost.fast import network_totals
from imcflow.hardware.preset import load_preset
from imcflow.mapping import map_network
from imcflow.mapping.objective import objective_strategy
from imcflow.networks import load_network


@pytest.mark.parametrize("net,geometry,search", [("resnet18-paper", "paper", "paper"),
                                                 ("mobilenetv2", "real", "optimal"),
                                                 ("vgg13-paper", "paper", "optimal")])
@pytest.mark.parametrize("mode", ["preloaded", "time-multiplexed"])
def test_network_totals_equal_cost_mapping(net, geometry, search, mode):
    network = load_network(net)
    for preset, array in (("isaac", ArraySpec(128, 128, cell_bits=2, weight_bits=8)),
                          ("sram-dong2020", ArraySpec(256, 64, cell_bits=1, weight_bits=4))):
        s = CostSettings(load_preset(preset, ["adc.bits=6"]), mode, 4)
        methods = ("im2col", "sdk", "vwsdk", "flex", objective_strategy("energy", s))
        mapping = map_network(network, array, methods, MappingOptions(geometry, search))
        for method in mapping.methods:
            fast = network_totals(mapping, method, s)
            slow = cost_mapping(mapping, method, s).totals
            assert np.isclose(fast.energy_j, slow.energy_j, rtol=1e-10), method
            assert np.isclose(fast.latency_s, slow.latency_s, rtol=1e-10), method
            assert fast.ops == slow.ops
            for k, v in slow.energy_breakdown_j.items():
                assert np.isclose(fast.energy_breakdown_j[k], v, rtol=1e-10, atol=1e-30), (method, k)
            for k, v in slow.area_breakdown_mm2.items():
                assert (fast.area_breakdown_mm2[k] is None) == (v is None)
                if v is not None:
                    assert np.isclose(fast.area_breakdown_mm2[k], v, rtol=1e-10), (method, k)
