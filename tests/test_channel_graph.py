"""One dependency graph per apply (issue 18, item 6): every channel method asks one
:class:`~imcflow.compress.graph.ChannelGraph`; a pruned copy replayed from it equals pruning a copy
through a graph of its own."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import imcflow.compress.graph as graph_module
import imcflow.frontends.torch_trace as torch_trace
from imcflow.compress import get_method
from imcflow.compress.base import CompressionContext
from imcflow.compress.deploy import extract_network
from imcflow.compress.graph import ChannelGraph, prune_to_widths
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping import MappingOptions

torch.set_num_threads(1)
SHAPE = (3, 8, 8)


class Residual(nn.Module):
    """A residual stream written by the stem and a block, an inner group, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, 3, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.c1 = nn.Conv2d(12, 10, 3, padding=1)
        self.c2 = nn.Conv2d(10, 12, 3, padding=1)
        self.down = nn.Conv2d(12, 16, 1, stride=2)
        self.fc = nn.Linear(16 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.c2(torch.relu(self.c1(x)))
        return self.fc(torch.relu(self.down(x)).flatten(1))


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return Residual().eval()


@pytest.fixture
def counted(monkeypatch):
    """Count dependency-graph builds and tracer runs."""
    calls = {"builds": 0, "traces": 0}
    build, trace = graph_module.build_dependency_graph, torch_trace._trace

    def counting_build(*args, **kwargs):
        calls["builds"] += 1
        return build(*args, **kwargs)

    def counting_trace(*args, **kwargs):
        calls["traces"] += 1
        return trace(*args, **kwargs)

    monkeypatch.setattr(graph_module, "build_dependency_graph", counting_build)
    monkeypatch.setattr(torch_trace, "_trace", counting_trace)
    return calls


def _ctx(model: nn.Module, method: str, **options) -> CompressionContext:
    m = get_method(method)
    return CompressionContext(ArraySpec(64, 64), MappingOptions(), m.resolve_options(options),
                              extract_network(model, SHAPE), SHAPE)


@pytest.mark.parametrize(("method", "options"), [("filter-prune", {"keep": 0.6, "steps": 6}),
                                                 ("vwc-sdk", {})])
def test_one_graph_and_one_trace_per_apply(counted, method, options):
    model = _model()
    ctx = _ctx(model, method, **options)
    counted.update(builds=0, traces=0)
    result = get_method(method).apply(model, ctx)
    assert result.changed
    assert counted == {"builds": 1, "traces": 1}  # was 1 + 1 + steps + 1 builds for filter-prune


def test_a_pruned_copy_equals_pruning_a_copy_with_its_own_graph():
    model = _model(1)
    graph = ChannelGraph.build(model, SHAPE)
    groups = {g.name: g for g in graph.groups()}
    assert set(groups["c2"].producers) == {"stem", "c2"}  # the residual stream
    widths = {"c2": 7, "c1": 4, "down": 9}
    replayed = graph.pruned_copy(widths)
    reference = copy.deepcopy(model)
    removed = prune_to_widths(reference, SHAPE, widths)
    assert len(removed["c2"]) == 5 and len(removed["c1"]) == 6
    assert replayed.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(replayed.state_dict()[key], value), key
    x = torch.randn(2, *SHAPE)
    assert torch.equal(replayed(x), reference(x))
    # The model itself is untouched, and the graph still answers.
    assert model.stem.out_channels == 12 and graph.groups() == tuple(groups.values())


def test_a_graph_is_spent_once_it_pruned_its_model():
    model = _model()
    graph = ChannelGraph.build(model, SHAPE)
    graph.prune({"c1": 5})
    assert model.c1.out_channels == 5 and model.c2.in_channels == 5
    with pytest.raises(ConfigError, match="before it was pruned"):
        graph.groups()
