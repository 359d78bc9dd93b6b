"""VWC-SDK: the plan on hand-computed layer lists, the --plan-only JSON, and dependency-aware pruning.

Arrays are 1-bit weights in 1-bit cells unless said otherwise, so C' = cols. ICt = floor(R / PW pixels)
where PW is the window VW-SDK chose; every test asserts that window before using it.
"""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.cli import main
from imcflow.compress.deploy import deploy, extract_network
from imcflow.compress.vwc_sdk import (
    ChannelGroup,
    PlanSettings,
    chain_groups,
    prune_to_widths,
    torch_groups,
    vwc_plan,
)
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import MappingOptions, map_layer

A256 = ArraySpec(256, 256)


def _window(layer: ConvLayer, array: ArraySpec) -> tuple[int, int]:
    w = map_layer(layer, array, "vwsdk").window
    return w.pw_h, w.pw_w


def test_single_residual_chain():
    # b: 3x3 on 8x8, pad 1, 128 -> 128. VW-SDK window a=2 x b=1 outputs: PW = 4 x 3 = 12 pixels.
    # ICt = floor(256/12) = 21; 128 = 6*21 + 2 -> residual 2 -> a's outputs 128 -> 126 (7 row tiles -> 6).
    # Round 2: 126 = 6*21 -> no residual, the plan stops after one round.
    a = ConvLayer("a", 16, 128, 3, 8, padding=1)
    b = ConvLayer("b", 128, 128, 3, 8, padding=1)
    assert _window(b, A256) == (4, 3)
    plan = vwc_plan(Network("n", (a, b)), A256)
    assert len(plan.rounds) == 1
    (step,) = plan.rounds[0].steps
    assert (step.group, step.consumer, step.ict, step.residual, step.extra, step.new_width) == \
        ("a", "b", 21, 2, 0, 126)
    assert plan.to_dict() == {"rounds": [{"layers": [
        {"name": "a", "in_channels": 16, "out_channels": 126},
        {"name": "b", "in_channels": 126, "out_channels": 128}]}]}
    # Row tiles of b: ceil(128/21) = 7 -> ceil(126/21) = 6, so its cycles drop by exactly 6/7.
    before = map_layer(b, A256, "vwsdk").cycles
    after = map_layer(plan.final_network.layer("b"), A256, "vwsdk").cycles
    assert after * 7 == before * 6


def test_no_residual_when_ic_below_ict():
    # b: 3x3 on a 3x3 map, no padding: one output, so PW = 3 x 3 = 9 pixels and ICt = floor(512/9) = 56
    # > 16 input channels: the residual is 0 (one row tile already) and there is no round at all.
    a = ConvLayer("a", 3, 16, 3, 5)
    b = ConvLayer("b", 16, 16, 3, 3)
    array = ArraySpec(512, 512)
    assert _window(b, array) == (3, 3)
    plan = vwc_plan(Network("n", (a, b)), array)
    assert plan.rounds == ()
    assert plan.to_dict() == {"rounds": []}


def test_walk_back_keeps_widths_non_decreasing():
    # l2: 3x3 on 8x8, 48 -> 32: PW 6 x 4 = 24 pixels, ICt = floor(256/24) = 10, 48 mod 10 = 8 -> 40.
    # l3: 32 -> 32: PW 4 x 4 = 16, ICt = 16, 32 mod 16 = 0 -> stays 32.
    # Walk back: l1's group (40) exceeds the next group (32): one more ICt block of 10 -> 30.
    l1 = ConvLayer("l1", 8, 48, 3, 8, padding=1)
    l2 = ConvLayer("l2", 48, 32, 3, 8, padding=1)
    l3 = ConvLayer("l3", 32, 32, 3, 8, padding=1)
    assert _window(l2, A256) == (6, 4) and _window(l3, A256) == (4, 4)
    net = Network("n", (l1, l2, l3))
    plan = vwc_plan(net, A256)
    assert len(plan.rounds) == 1
    steps = {s.group: s for s in plan.rounds[0].steps}
    s1 = steps["l1"]
    assert (s1.ict, s1.residual, s1.extra, s1.new_width) == (10, 8, 10, 30)
    assert (steps["l2"].ict, steps["l2"].residual, steps["l2"].new_width) == (16, 0, 32)
    # Without the walk-back only the residual goes.
    off = vwc_plan(net, A256, settings=PlanSettings(walk_back="off"))
    assert off.rounds[0].widths == {"l1": 40, "l2": 32}


def test_two_residuals_and_walk_back():
    # l2 and l3 both see PW 4 x 3 = 12 pixels on 4x4 maps: ICt = 21.
    # group l1 (128 read by l2): 128 mod 21 = 2 -> 126; group l2 (96 read by l3): 96 mod 21 = 12 -> 84.
    # Walk back: 126 > 84 -> 126 - 21 = 105.
    l1 = ConvLayer("l1", 8, 128, 3, 4, padding=1)
    l2 = ConvLayer("l2", 128, 96, 3, 4, padding=1)
    l3 = ConvLayer("l3", 96, 96, 3, 4, padding=1)
    assert _window(l2, A256) == (4, 3) and _window(l3, A256) == (4, 3)
    plan = vwc_plan(Network("n", (l1, l2, l3)), A256)
    first = {s.group: (s.residual, s.extra, s.new_width) for s in plan.rounds[0].steps}
    assert first == {"l1": (2, 21, 105), "l2": (12, 0, 84)}


def test_chain_rule_breaks_on_channel_mismatch():
    layers = [ConvLayer("a", 3, 8, 3, 8), ConvLayer("b", 8, 16, 3, 8), ConvLayer("c", 32, 4, 1, 4)]
    groups = chain_groups(layers)
    assert [(g.name, g.producers, g.consumers, g.width) for g in groups] == [("a", ("a",), ("b",), 8)]


def test_coupled_group_choice():
    # One group of 96 channels read by two layers, both 3x3 with padding 1 on a 4x4 map.
    # r1 (96 -> 96): window a=2 x b=1, PW 4x3 = 12 -> ICt 21, residual 96 mod 21 = 12;
    #   cycles = windows (2*4) * row tiles * col tiles (C'/2 = 128 >= 96: 1) = 8 * ceil(W/21).
    # r2 (96 -> 32): window a=4 x b=2, PW 6x4 = 24 -> ICt 10, residual 96 mod 10 = 6;
    #   cycles = windows (1*2) * ceil(W/10) * 1.
    # Width 96: 8*5 + 2*10 = 60; width 84 (r1's residual): 8*4 + 2*9 = 50; width 90: 8*5 + 2*9 = 58.
    # min-cycles takes 84.
    p = ConvLayer("p", 8, 96, 3, 4, padding=1)
    r1 = ConvLayer("r1", 96, 96, 3, 4, padding=1)
    r2 = ConvLayer("r2", 96, 32, 3, 4, padding=1)
    assert _window(r1, A256) == (4, 3) and _window(r2, A256) == (6, 4)
    net = Network("n", (p, r1, r2))
    groups = [ChannelGroup("p", 96, ("p",), ("r1", "r2"))]

    def cycles(w: int) -> int:
        return sum(map_layer(l.with_changes(in_channels=w), A256, "vwsdk").cycles for l in (r1, r2))

    assert (cycles(96), cycles(84), cycles(90)) == (60, 50, 58)
    plan = vwc_plan(net, A256, groups=groups, settings=PlanSettings(max_rounds=1))
    (step,) = plan.rounds[0].steps
    assert (step.consumer, step.ict, step.residual, step.new_width) == ("r1", 21, 12, 84)
    # Every later round lowers the readers' summed cycles again (require_gain).
    full = vwc_plan(net, A256, groups=groups)
    widths = [96] + [r.widths["p"] for r in full.rounds]
    assert all(cycles(b) < cycles(a) for a, b in zip(widths, widths[1:], strict=False))


def test_plan_only_json_cli(tmp_path):
    out = tmp_path / "plan.json"
    rc = main(["compress", "--layer", "8,8,3,3,8,48,1,1", "--layer", "8,8,3,3,48,32,1,1",
               "--layer", "8,8,3,3,32,32,1,1", "--array", "256x256", "--weight-bits", "1",
               "--method", "vwc-sdk",
               "--plan-only", "--format", "json", "--out", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert list(data) == ["rounds"] and len(data["rounds"]) == 1
    assert data["rounds"][0] == {"layers": [
        {"name": "layer1", "in_channels": 8, "out_channels": 30},
        {"name": "layer2", "in_channels": 30, "out_channels": 32},
        {"name": "layer3", "in_channels": 32, "out_channels": 32}]}


def test_plan_only_table_and_model_cli(capsys):
    rc = main(["compress", "resnet20", "--input", "1x32x32", "--array", "512x256", "--weight-bits", "2",
               "--method", "vwc-sdk", "--plan-only"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "VWC-SDK plan for resnet20" in text and "VW-SDK cycles:" in text


@pytest.mark.parametrize("argv", [
    ["compress", "resnet20", "--method", "nope", "--plan-only"],
    ["compress", "resnet20", "--method", "none", "--plan-only"],            # no torch-free plan
    ["compress", "resnet20", "--method", "vwc-sdk"],                        # training needs --data
    ["compress", "--layer", "8,8,3,3,8,8", "--method", "vwc-sdk", "--data", "digits"],
    ["compress", "resnet20", "--method", "vwc-sdk", "--plan-only", "--option", "walk_back=up"],
    ["compress", "resnet20", "--method", "vwc-sdk", "--plan-only", "--option", "nonsense"],
    ["compress", "resnet20", "--method", "vwc-sdk", "--plan-only", "--option", "colour=red"],
])
def test_cli_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("imcflow compress: error:") and "Traceback" not in err


def test_cli_missing_method_is_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["compress", "resnet20", "--plan-only"])
    assert exc.value.code == 2


def test_resnet20_pruning_follows_the_plan_and_stays_runnable():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from imcflow.models import create_model

    shape = (1, 32, 32)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    groups = torch_groups(model, shape)
    stream = {g.name: g for g in groups}["conv1"]
    # The stage-1 residual stream is written by the stem and every block's second conv.
    assert set(stream.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    assert {"layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0"} <= set(stream.consumers)
    array = ArraySpec(512, 256, weight_bits=2)
    net = extract_network(model, shape, "resnet20")
    plan = vwc_plan(net, array, MappingOptions(), groups)
    assert plan.rounds, "this array leaves residuals in stage 3 (ICt 42 for 64 channels)"
    before = deploy(model, shape, array, ("vwsdk",))
    prune_to_widths(model, shape, plan.rounds[0].widths)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10)
    pruned = extract_network(model, shape, "resnet20")
    assert [(l.name, l.in_channels, l.out_channels) for l in pruned.layers] == \
        [(l.name, l.in_channels, l.out_channels) for l in plan.rounds[0].network.layers]
    after = deploy(model, shape, array, ("vwsdk",))
    assert after.summary("vwsdk").cycles < before.summary("vwsdk").cycles
    assert after.parameters < before.parameters
    # Batch norms shrank with their convs (Torch-Pruning's dependency graph).
    assert model.layer3[0].bn1.num_features == model.layer3[0].conv1.out_channels


def test_pruning_keeps_the_lowest_l1_filters_out():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        for i in range(8):
            model[0].weight[i].fill_(0.1 * (i + 1) * (-1) ** i)  # L1 grows with the index
    kept_before = model[0].weight[3:].clone()
    groups = torch_groups(model, (1, 4, 4))
    assert [g.name for g in groups] == ["0", "2"]
    removed = prune_to_widths(model, (1, 4, 4), {"0": 5})
    assert removed == {"0": [0, 1, 2]}
    assert torch.equal(model[0].weight, kept_before)
    assert model[2].in_channels == 5


def test_coupled_skip_leaves_residual_streams_alone():
    from imcflow.models import create_model

    shape = (1, 32, 32)
    model = create_model("resnet20", num_classes=10, in_channels=1)
    groups = torch_groups(model, shape)
    net = extract_network(model, shape, "resnet20")
    array = ArraySpec(512, 256, weight_bits=2)
    stream = "layer3.0.downsample.0"  # stage-3 stream: written by the shortcut and three conv2s
    assert len({g.name: g for g in groups}[stream].producers) == 4
    default = vwc_plan(net, array, MappingOptions(), groups)
    skip = vwc_plan(net, array, MappingOptions(), groups, PlanSettings(coupled="skip"))
    assert default.rounds[0].widths[stream] == 42  # 64 mod ICt 42 = 22 removed
    assert skip.rounds[0].widths[stream] == 64
    inner = {n: w for n, w in skip.rounds[0].widths.items() if n.startswith("layer3.")}
    assert inner == {"layer3.0.conv1": 42, "layer3.0.downsample.0": 64, "layer3.1.conv1": 42,
                     "layer3.2.conv1": 42}




@settings(max_examples=60)
@given(widths=st.lists(st.integers(4, 96), min_size=2, max_size=5),
       size=st.sampled_from([4, 6, 8]), rows=st.sampled_from([64, 128, 256, 512]),
       walk=st.sampled_from(["chain", "off"]), authors=st.booleans(),
       search=st.sampled_from(["optimal", "paper"]))
def test_plan_invariants_on_random_chains(widths, size, rows, walk, authors, search):
    # Widths never grow and stay >= 1, every round changes something, and the last plan is a fixed
    # point (another round would change nothing). With require_gain (not the authors' default) every
    # round also strictly lowers the network's VW-SDK cycles.
    from imcflow.compress.vwc_sdk import plan_round
    from imcflow.mapping import map_network

    chans = [3] + widths
    layers = tuple(ConvLayer(f"l{i}", chans[i], chans[i + 1], 3, size, padding=1)
                   for i in range(len(widths)))
    net = Network("n", layers)
    array = ArraySpec(rows, 256)
    s = PlanSettings() if authors else PlanSettings(walk_back=walk, require_gain=True,
                                                    walk_back_rounds="residual")
    mapping = MappingOptions(search=search if authors else "optimal")
    plan = vwc_plan(net, array, mapping, settings=s)
    nets = [net] + [r.network for r in plan.rounds]
    if not authors:
        cycles = [map_network(n, array, ("vwsdk",)).totals("vwsdk").cycles for n in nets]
        assert all(b < a for a, b in zip(cycles, cycles[1:], strict=False))
    for before, after in zip(nets, nets[1:], strict=False):
        assert [l.in_channels for l in before.layers] != [l.in_channels for l in after.layers]
        for x, y in zip(before.layers, after.layers, strict=True):
            assert 1 <= y.out_channels <= x.out_channels and y.in_channels <= x.in_channels
    if len(plan.rounds) < s.max_rounds:
        last = plan.rounds[-1].widths if plan.rounds else {g.name: g.width for g in plan.groups}
        _, again = plan_round(net, plan.groups, last, array, plan.mapping, s)
        assert again == last


# ---------------------------------------------------------------------------------------------------
# The authors' procedure (issue 13): their scripts' window search, walk-back in every round.

GOLDEN = json.loads((__import__("pathlib").Path(__file__).parent / "golden" / "vwc_sdk_published.json")
                    .read_text())


def _plan_json(argv, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cnn8_plan_reproduces_the_published_rounds(capsys):
    g = GOLDEN["cnn8"]
    rounds = _plan_json(g["argv"], capsys)["rounds"]
    assert len(rounds) == len(g["in_channels_per_round"])  # RCP1, RCP2, then nothing changes
    for r, want_ic, want_oc1 in zip(rounds, g["in_channels_per_round"], g["conv1_out_channels_per_round"], strict=False):
        by_name = {l["name"]: l for l in r["layers"]}
        assert [by_name[n]["in_channels"] for n in g["layers"]] == want_ic
        assert by_name["conv1"]["out_channels"] == want_oc1


def test_cnn8_ict_of_the_scripts_search():
    from imcflow.compress.vwc_sdk import reader_ict
    from imcflow.networks.builtin import traced_network

    net = traced_network("cnn8", (3, 40, 40))
    g = GOLDEN["cnn8"]
    paper = MappingOptions(search="paper")
    assert [reader_ict(net.layer(n), ArraySpec(256, 512), paper) for n in g["layers"]] \
        == g["ict_original"]
    # VW-SDK's published search (mapping.md section 5: a < Wo, min with im2col) picks 4x4-pixel
    # windows on conv4-conv6 (ICt 256/16 = 16), the 6, 7, 16, 16, 16, 10 the issue reported.
    from imcflow.compress.vwc_sdk import row_tile_channels

    vw = MappingOptions(geometry="paper", search="paper")
    assert [row_tile_channels(map_layer(net.layer(n), ArraySpec(256, 512), "vwsdk", vw),
                              ArraySpec(256, 512)) for n in g["layers"]] == [6, 7, 16, 16, 16, 10]


def test_resnet20_wide_plan_reproduces_rcp1(capsys):
    g = GOLDEN["resnet20-wide"]
    rounds = _plan_json(g["argv"], capsys)["rounds"]
    assert len(rounds) == len(g["stage_in_channels_per_round"])
    for r, want in zip(rounds, g["stage_in_channels_per_round"], strict=False):
        by_name = {l["name"]: l for l in r["layers"]}
        assert [by_name[n]["in_channels"] for n in g["stage_readers"]] == want


def test_walk_back_runs_in_rounds_without_a_residual():
    # l2 reads l1's 80 channels on 8x8 with a 6x6-pixel window: ICt = floor(256/36) = 7. Round 1
    # prunes the residual 80 mod 7 = 3 and walks back one block (77 > 16 -> 70). The authors' scripts
    # walk back in every round, so l1 then loses 7 channels per round while wider than l2's 16
    # outputs (63, 56, ..., 14); walking back only after a residual stops after round 1.
    from imcflow.compress.vwc_sdk import plan_round

    ch = [3, 25, 80, 16, 40]
    net = Network("n", tuple(ConvLayer(f"l{i}", ch[i], ch[i + 1], 3, 8, padding=1) for i in range(4)))
    assert _window(net.layers[2], A256) == (6, 6)
    every = vwc_plan(net, A256, settings=PlanSettings())
    assert [r.widths["l1"] for r in every.rounds] == [70, 63, 56, 49, 42, 35, 28, 21, 14]
    assert every.rounds[-1].widths == {"l0": 10, "l1": 14, "l2": 16}
    _, again = plan_round(net, every.groups, every.rounds[-1].widths, A256, every.mapping, PlanSettings())
    assert again == every.rounds[-1].widths  # a fixed point: nothing changes any more
    residual = vwc_plan(net, A256, settings=PlanSettings(walk_back_rounds="residual"))
    assert [r.widths for r in residual.rounds] == [{"l0": 17, "l1": 70, "l2": 16}]
