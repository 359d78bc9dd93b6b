"""Low-rank factors: SVD error bounds, module equivalence with the original conv, rank policies and
model conversion."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from imcflow.compress.lowrank import (
    GroupLowRankConv2d,
    LowRankConv2d,
    compose_factors,
    decompose_model,
    energy_rank,
    lowrank_error,
    lowrank_network,
    model_weights,
    plan_lowrank,
    singular_values,
    svd_factors,
)
from imcflow.errors import ConfigError
from imcflow.hardware.array import ArraySpec
from imcflow.layers import ConvLayer, Network
from imcflow.mapping import MappingOptions, get_strategy
from imcflow.mapping.lowrank import LowRankLayer, map_lowrank

torch.set_num_threads(1)


def trained_like(rng: np.random.Generator, oc: int, ic: int, k: int) -> np.ndarray:
    """A weight with a decaying spectrum (what training produces) plus noise."""
    m, n = oc, ic * k * k
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    r = min(m, n)
    s = np.exp(-np.arange(r) / max(r / 6, 1))
    w = (u[:, :r] * s) @ v[:, :r].T + 0.01 * rng.normal(size=(m, n))
    return w.reshape(oc, ic, k, k)


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 3]), st.sampled_from([1, 2, 4]),
                   st.integers(0, 2**31 - 1), st.booleans())


@settings(max_examples=80)
@given(shapes, st.integers(1, 12), st.sampled_from(["input", "output"]))
def test_group_error_never_exceeds_plain_rank_k_error(shape, rank, split):
    oc_m, ic_m, k, g, seed, trained = shape
    oc, ic = oc_m * g * 2, ic_m * g * 2
    rng = np.random.default_rng(seed)
    w = trained_like(rng, oc, ic, k) if trained else rng.normal(size=(oc, ic, k, k))
    m_plain = min(oc, ic * k * k)
    blk = LowRankLayer("x", ic, oc, k, rank=1, rank_groups=g, split=split, input_size=k).block_shape
    rank = min(rank, m_plain, min(blk))
    plain = lowrank_error(w, rank, 1, split)
    group = lowrank_error(w, rank, g, split)
    assert group <= plain + 1e-9 * max(1.0, plain)
    # The error from the singular values is the error of the actual factors.
    r, l = svd_factors(w, rank, g, split)
    assert np.linalg.norm(w - compose_factors(r, l, g, split)) == pytest.approx(group, rel=1e-9, abs=1e-9)


@settings(max_examples=25)
@given(st.integers(0, 10_000), st.sampled_from([1, 2]), st.integers(0, 1), st.sampled_from([1, 2, 4]),
       st.sampled_from(["input", "output"]), st.booleans())
def test_module_computes_conv_l_after_conv_r_and_full_rank_is_the_conv(seed, stride, pad, g, split, bias):
    torch.manual_seed(seed)
    conv = nn.Conv2d(8, 8, 3, stride=stride, padding=pad, bias=bias).double()
    rec = LowRankLayer("x", 8, 8, 3, rank=1, rank_groups=g, split=split, input_size=7)
    full = min(rec.block_shape)
    x = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    m = GroupLowRankConv2d.from_conv(conv, full, g, split)
    assert torch.allclose(m(x), conv(x), atol=1e-9)
    # Truncated: equals the conv with the composed weight L R.
    m = GroupLowRankConv2d.from_conv(conv, max(1, full // 3), g, split)
    w = compose_factors(m.r.weight.detach().numpy(), m.l.weight.detach().numpy(), g, split)
    ref = F.conv2d(x, torch.from_numpy(w), conv.bias, stride=stride, padding=pad)
    assert torch.allclose(m(x), ref, atol=1e-9)
    assert m.record("x", (7, 7)).weight_count == m.r.weight.numel() + m.l.weight.numel()


def test_lowrank_conv_has_one_group_and_rejects_grouped_convs():
    with pytest.raises(ConfigError, match="rank_groups=2"):
        LowRankConv2d.from_conv(nn.Conv2d(4, 4, 3), 2, 2)
    with pytest.raises(ConfigError, match="groups=1"):
        GroupLowRankConv2d.from_conv(nn.Conv2d(4, 4, 3, groups=2), 1)


def test_energy_rank_by_hand():
    w = np.diag([4.0, 2.0, 1.0, 0.0])[:, :, None, None]  # energies 16, 4, 1: total 21
    assert energy_rank(w, 16 / 21) == 1
    assert energy_rank(w, 0.9) == 2          # 20/21 = 0.952
    assert energy_rank(w, 1.0) == 3
    assert singular_values(w).shape == (1, 4)


def _net_and_weights(seed=0):
    rng = np.random.default_rng(seed)
    layers = (ConvLayer("stem", 3, 16, 3, input_size=16, padding=1),
              ConvLayer("a", 16, 32, 3, input_size=16, padding=1),
              ConvLayer("b", 32, 32, 3, input_size=16, padding=1, stride=2),
              ConvLayer("fc", 32, 10, 1, kind="linear"))
    weights = {l.name: trained_like(rng, l.out_channels, l.in_channels, l.Kh) for l in layers}
    return Network("n", layers), weights


def test_policies_respect_their_budgets_and_default_layers():
    net, w = _net_and_weights()
    p = plan_lowrank(net, w, "ratio", ratio=0.4)
    assert [c.layer for c in p.choices] == ["a", "b"]  # not the first conv, not the classifier
    for c in p.choices:
        assert c.weights <= 0.4 * c.original_weights
        nxt = LowRankLayer.from_conv(net.layer(c.layer), c.rank + 1)
        assert nxt.weight_count > 0.4 * c.original_weights  # the largest rank within the budget
    u = plan_lowrank(net, w, "uniform", rank=3, rank_groups=2)
    assert {(c.rank, c.rank_groups) for c in u.choices} == {(3, 2)}
    e = plan_lowrank(net, w, "energy", energy=0.9)
    for c in e.choices:
        assert c.rank == energy_rank(w[c.layer], 0.9)
    with pytest.raises(ConfigError, match="no layer named"):
        plan_lowrank(net, w, layers=["zz"])


def test_array_aware_picks_the_fewest_cycles_among_candidates():
    net, w = _net_and_weights(1)
    array = ArraySpec(64, 64)
    p = plan_lowrank(net, w, "array-aware", ratio=0.5, array=array, mapping_method="sdk",
                     group_choices=(1, 2, 4))
    for c in p.choices:
        layer = net.layer(c.layer)
        cands = []
        for g in (1, 2, 4):
            probe = LowRankLayer.from_conv(layer, 1, g)
            k = min(int(0.5 * layer.weight_count // probe.weight_count), min(probe.block_shape))
            cands.append(map_lowrank(LowRankLayer.from_conv(layer, k, g), get_strategy("sdk"), array,
                                     MappingOptions()).cycles)
        assert c.cycles == min(cands)
        assert c.weights <= 0.5 * c.original_weights


def test_decompose_model_and_layer_list():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.Flatten(),
                          nn.Linear(16 * 4 * 4, 10))
    net, w = model_weights(model, (3, 8, 8))
    p = plan_lowrank(net, w, "uniform", rank=4, rank_groups=2)
    x = torch.randn(1, 3, 8, 8)
    decompose_model(model, p)
    lnet = lowrank_network(model, (3, 8, 8))
    kinds = [l.kind for l in lnet.layers]
    assert kinds == ["conv", "lowrank", "lowrank", "linear"]
    assert lnet.layer("2") == LowRankLayer("2", 8, 16, 3, rank=4, rank_groups=2, input_size=8,
                                           padding=1, bias=True)
    assert model(x).shape == (1, 10)
