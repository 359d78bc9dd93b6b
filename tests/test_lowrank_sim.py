"""Simulator equivalence of a low-rank layer: SDK/VW-SDK/... tiles of R, then I_P (x) L tiles, reproduce
conv(L) after conv(R) exactly on integer data, with the activation counts of the mapping plan."""
import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imcflow.compress.lowrank import compose_factors
from imcflow.hardware.array import ArraySpec
from imcflow.mapping import MappingOptions
from imcflow.mapping.lowrank import LowRankLayer
from imcflow.sim.lowrank_tiles import build_lowrank_tiles, l_matrix, run_lowrank

torch.set_num_threads(1)


@settings(max_examples=40)
@given(st.integers(0, 10_000), st.sampled_from(["im2col", "sdk", "vwsdk", "flex"]),
       st.sampled_from([1, 2]), st.sampled_from(["input", "output"]), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 1), st.integers(4, 9),
       st.sampled_from([(16, 16), (32, 32), (64, 48), (128, 128)]))
def test_tiles_reproduce_conv_l_after_conv_r(seed, method, g, split, rank, stride, pad, hw, rc):
    rng = np.random.default_rng(seed)
    ic, oc = 4 * g, 6 * g
    layer = LowRankLayer("lr", ic, oc, 3, rank=rank, rank_groups=g, split=split, input_size=hw,
                         stride=stride, padding=pad)
    rl, ll = layer.r_layer, layer.l_layer
    r_w = rng.integers(-3, 4, size=(rl.out_channels, rl.group_in_channels, 3, 3)).astype(np.float64)
    l_w = rng.integers(-3, 4, size=(ll.out_channels, ll.group_in_channels, 1, 1)).astype(np.float64)
    x = torch.from_numpy(rng.integers(0, 8, size=(2, ic, hw, hw)).astype(np.float64))
    array = ArraySpec(*rc)
    tiles = build_lowrank_tiles(layer, r_w, l_w, array, method, MappingOptions())
    res = run_lowrank(tiles, x)
    mid = F.conv2d(x, torch.from_numpy(r_w), stride=stride, padding=pad, groups=rl.groups)
    ref = F.conv2d(mid, torch.from_numpy(l_w), groups=ll.groups)
    assert torch.equal(res.output, ref)
    # ... which is what mapping the product L R computes (the dense conv).
    dense = torch.from_numpy(compose_factors(r_w, l_w, g, split))
    assert torch.equal(res.output, F.conv2d(x, dense, stride=stride, padding=pad))
    # Activations are the plan's.
    plan = tiles.plan
    assert res.r_counters.activations == 2 * plan.factor_r.cycles
    assert res.l_activations == 2 * plan.factor_l.cycles
    assert res.activations == 2 * (plan.factor_r.cycles + plan.factor_l.cycles) == 2 * plan.cycles
    assert tiles.l_tile_count == plan.factor_l.arrays


def test_one_l_activation_per_sdk_window_by_hand():
    # 8 -> 4 (rank 4) -> 16 on 8x8, 128x128: SDK window 2x2, L holds I_4 (x) L (16 x 64).
    layer = LowRankLayer("lr", 8, 16, 3, rank=4, input_size=8, padding=1)
    rng = np.random.default_rng(0)
    r_w = rng.integers(-2, 3, size=(4, 8, 3, 3)).astype(float)
    l_w = rng.integers(-2, 3, size=(16, 4, 1, 1)).astype(float)
    tiles = build_lowrank_tiles(layer, r_w, l_w, ArraySpec(128, 128), "sdk")
    assert tiles.l_tiles[0][0].shape == (16, 64)
    assert np.array_equal(tiles.l_tiles[0][0], np.kron(np.eye(4), l_matrix(layer, l_w)))
    res = run_lowrank(tiles, torch.ones(1, 8, 8, 8))
    assert res.r_counters.activations == 16 and res.l_activations == 16
