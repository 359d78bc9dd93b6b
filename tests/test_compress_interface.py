"""The method interface, its registry and options, and the deployed network (masks, quantization,
changed shapes)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imcflow.cli import main
from imcflow.compress import (
    CompressionContext,
    CompressionMethod,
    MethodOption,
    StepResult,
    get_method,
    method_names,
)
from imcflow.compress.base import zero_im2col_rows
from imcflow.compress.deploy import deploy, extract_network
from imcflow.errors import ConfigError, UnknownNameError
from imcflow.hardware.array import ArraySpec
from imcflow.mapping import MappingOptions, map_network


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.Flatten(),
                         nn.Linear(16 * 6 * 6, 4))


def _ctx(model: nn.Module, method: CompressionMethod, array: ArraySpec, **options) -> CompressionContext:
    return CompressionContext(array, MappingOptions(), method.resolve_options(options),
                              extract_network(model, (1, 6, 6)), (1, 6, 6))


def test_registry_lists_builtin_methods():
    assert {"none", "magnitude", "vwc-sdk"} <= set(method_names())
    with pytest.raises(UnknownNameError, match="known: .*vwc-sdk"):
        get_method("nope")


def test_option_parsing_and_errors():
    m = get_method("vwc-sdk")
    opts = m.resolve_options({"require_gain": "false", "max-rounds": "3", "walk_back": "off"})
    assert opts["require_gain"] is False and opts["max_rounds"] == 3 and opts["walk_back"] == "off"
    with pytest.raises(ConfigError, match="walk_back"):
        m.resolve_options({"walk_back": "sideways"})
    with pytest.raises(ConfigError, match="expected a int"):
        m.resolve_options({"max_rounds": "many"})
    with pytest.raises(ConfigError, match="no option 'colour'"):
        m.resolve_options({"colour": "red"})
    assert MethodOption("x", 0.5, "").parse("0.25") == 0.25


def test_extract_network_reads_shapes_in_execution_order():
    net = extract_network(_net(), (1, 6, 6))
    assert [(l.name, l.in_channels, l.out_channels, l.input_size) for l in net.layers] == [
        ("0", 1, 8, (6, 6)), ("2", 8, 16, (6, 6)), ("4", 16, 16, (6, 6)), ("6", 576, 4, (1, 1))]
    assert net.layers[-1].kind == "linear"


def test_trivial_method_deploys_the_same_network():
    model = _net()
    array = ArraySpec(64, 64)
    none = get_method("none")
    step = none.apply(model, _ctx(model, none, array))
    assert step.changed is False and step.model is model
    d = deploy(model, (1, 6, 6), array)
    reference = map_network(extract_network(model, (1, 6, 6)), array)
    for m in reference.methods:
        assert d.summary(m).cycles == reference.totals(m).cycles
        assert d.summary(m).arrays == reference.totals(m).arrays
    assert d.parameters == sum(p.numel() for p in model.parameters())
    # Float weights are deployed as they are.
    assert np.array_equal(d.layers[1].weight, model[2].weight.detach().numpy())
    assert not d.layers[1].quantized


def test_zero_im2col_rows_hand_case():
    # 2 output channels, 3 input channels, 2x2 kernel: 12 rows; channel 1 all zero (4 rows) plus tap
    # (0, 0) of channel 0 zero in both filters (1 row) -> 5 rows skippable.
    w = np.ones((2, 3, 2, 2))
    w[:, 1] = 0
    w[:, 0, 0, 0] = 0
    assert zero_im2col_rows(w) == 5
    w[0, 1, 0, 0] = 3  # one non-zero weight revives that row
    assert zero_im2col_rows(w) == 4


def test_magnitude_masks_survive_training_and_show_in_the_deployed_weights():
    model = _net()
    method = get_method("magnitude")
    ctx = _ctx(model, method, ArraySpec(64, 64), sparsity=0.5)
    step = method.apply(model, ctx)
    assert step.changed and set(step.summary["zeroed"]) == {"2", "4"}  # first/last kept dense
    assert step.summary["zeroed"]["2"] == 8 * 16 * 9 // 2
    hooks = method.hooks(model, ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(3):
        loss = model(torch.randn(4, 1, 6, 6)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hooks.after_step(model)
    d = deploy(model, (1, 6, 6), ArraySpec(64, 64))
    mask = model[2].weight_mask.numpy()
    assert np.all(d.layers[1].weight[mask == 0] == 0)
    assert d.layers[1].nonzero == int(mask.sum())
    assert d.layers[0].nonzero == 8 * 9  # dense first layer


def test_magnitude_on_quantized_layers_masks_after_quantization():
    from imcflow.quant import quantize_model

    model = quantize_model(_net(), 2, None, "dorefa")  # DoReFa has no zero level: mask must come last
    method = get_method("magnitude")
    method.apply(model, _ctx(model, method, ArraySpec(64, 64)))
    d = deploy(model, (1, 6, 6), ArraySpec(64, 64, weight_bits=2))
    layer = d.layers[1]
    assert layer.quantized
    mask = model[2].weight_mask.numpy()
    assert np.all(layer.weight[mask == 0] == 0)
    assert np.all(layer.weight[mask == 1] != 0)


class _DropHalfFilters(CompressionMethod):
    """A test method that halves the middle conv's filters by rebuilding the two convs (no
    Torch-Pruning), to show any shape change reaches the deployed network."""

    name = "test-drop-half"
    description = "test only"
    changes = "channels"

    def apply(self, model: nn.Module, ctx: CompressionContext) -> StepResult:
        keep = model[2].out_channels // 2
        new2 = nn.Conv2d(8, keep, 3, padding=1)
        new4 = nn.Conv2d(keep, 16, 3, padding=1)
        with torch.no_grad():
            new2.weight.copy_(model[2].weight[:keep])
            new2.bias.copy_(model[2].bias[:keep])
            new4.weight.copy_(model[4].weight[:, :keep])
            new4.bias.copy_(model[4].bias)
        model[2], model[4] = new2, new4
        return StepResult(True, model, {"kept": keep})

    def annotate(self, model, layers, ctx):
        from dataclasses import replace

        return tuple(replace(l, skipped_rows={"im2col": l.zero_rows}) for l in layers)


def test_a_new_method_plugs_in_and_its_shape_changes_reach_the_mapping():
    from imcflow.compress.base import METHODS

    with METHODS.override("test-drop-half", _DropHalfFilters()) as method:  # registry restored after
        assert get_method("test-drop-half") is method
        _check_drop_half(method)
    assert "test-drop-half" not in METHODS.names()


def _check_drop_half(method):
    model = _net()
    array = ArraySpec(64, 64)
    before = deploy(model, (1, 6, 6), array)
    ctx = _ctx(model, method, array)
    method.apply(model, ctx)
    after = deploy(model, (1, 6, 6), array, method=method, ctx=ctx)
    assert [l.layer.out_channels for l in after.layers][:3] == [8, 8, 16]
    assert after.layers[2].layer.in_channels == 8
    # The reader of the halved channels needs 8*9 = 72 rows instead of 144: 2 row tiles instead of 3.
    assert after.mapping.layers[2]["im2col"].row_tiles == 2
    assert before.mapping.layers[2]["im2col"].row_tiles == 3
    assert after.summary("im2col").cycles < before.summary("im2col").cycles
    assert after.summary("im2col").skipped_rows == 0
    assert after.summary("sdk").skipped_rows is None


def test_methods_command_lists_options(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "vwc-sdk" in out and "walk_back" in out and "sparsity" in out
    assert main(["methods", "--format", "json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    vwc = next(m for m in data if m["name"] == "vwc-sdk")
    assert vwc["iterative"] and vwc["has_plan"]
    assert {o["name"] for o in vwc["options"]} >= {"coupled", "require_gain", "walk_back"}
