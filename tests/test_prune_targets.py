"""Pruning baselines matched on cycles or energy under a named mapping (issue 13, item 2): the
bisected model is never above the target and one bisection step further is above it; the torch-free
measure equals what the deployed model maps to."""
import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The same seeded ResNet-20 (1x32x32), 128x128 array and method context as the low-rank tests.
import test_lowrank_methods as lowrank_tests
from imcflow.compress import prune_baselines  # noqa: F401  (registration)
from imcflow.compress.deploy import deploy
from imcflow.compress.prune_baselines import bisect_keep, keep_candidates, scan_keep
from imcflow.errors import ConfigError
from imcflow.mapping import MappingOptions, strategy_names

ARRAY, SHAPE, _ctx = lowrank_tests.ARRAY, lowrank_tests.SHAPE, lowrank_tests._ctx
resnet20 = lowrank_tests.base  # the module-scoped fixture, collected here under this name


@settings(max_examples=60, derandomize=True)
@given(steps=st.lists(st.integers(0, 50), min_size=1, max_size=12), target=st.integers(0, 400),
       n=st.integers(1, 12))
def test_bisection_is_never_above_and_within_one_step(steps, target, n):
    # A non-decreasing step function of f (like cycles of rounded channel counts).
    cum = [sum(steps[:i + 1]) for i in range(len(steps))]

    def measure(f: float) -> float:
        return float(cum[min(len(cum) - 1, int(f * len(cum)))])

    if measure(0.0) > target:
        with pytest.raises(ConfigError, match="cannot be matched"):
            bisect_keep(measure, target, n)
        return
    f, reached, further = bisect_keep(measure, target, n)
    assert reached == measure(f) <= target
    if further is None:
        assert f == 1.0
    else:
        assert further == measure(f + 2.0 ** -n) > target


@settings(max_examples=60, derandomize=True)
@given(widths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       values=st.lists(st.integers(0, 100), min_size=60, max_size=60), target=st.integers(0, 100))
def test_scan_finds_the_largest_candidate_even_when_not_monotone(widths, values, target):
    cands = keep_candidates(widths)
    table = dict(zip(cands, values, strict=False))  # an arbitrary (non-monotone) measure

    def measure(f: float) -> float:
        return float(table[f])

    if all(measure(f) > target for f in cands):
        with pytest.raises(ConfigError, match="cannot be matched"):
            scan_keep(measure, target, cands)
        return
    f, reached, further = scan_keep(measure, target, cands)
    assert reached == measure(f) <= target
    assert all(measure(g) > target for g in cands if g > f)
    assert further is None if f == cands[-1] else further == measure(min(g for g in cands if g > f))


@pytest.mark.parametrize("mapping", ["sdk", "vwsdk", "flex"])
def test_filter_prune_matches_cycles_under_the_named_mapping(resnet20, mapping):
    dense = deploy(resnet20, SHAPE, ARRAY, None, MappingOptions())
    target = dense.summary(mapping).cycles * 6 // 10
    model = copy.deepcopy(resnet20)
    m, ctx = _ctx(model, "filter-prune", target_cycles=target, match_mapping=mapping, steps=7)
    step = m.apply(model, ctx)
    match = step.summary["match"]
    assert (match["on"], match["mapping"], match["target"]) == ("cycles", mapping, target)
    assert match["achieved"] <= target < match["next_step"]
    pruned = deploy(model, SHAPE, ARRAY, None, MappingOptions())
    assert pruned.summary(mapping).cycles == match["achieved"]  # torch-free measure == deployed
    assert step.summary["cycles"] == {k: pruned.summary(k).cycles for k in (*strategy_names(), "best")}


def test_filter_prune_matches_energy(resnet20):
    dense = deploy(resnet20, SHAPE, ARRAY, ("vwsdk",), MappingOptions(), cost_preset="isaac")
    target = 0.7 * dense.energy_j("vwsdk")
    model = copy.deepcopy(resnet20)
    m, ctx = _ctx(model, "filter-prune", target_energy_j=target, match_mapping="vwsdk", steps=6)
    match = m.apply(model, ctx).summary["match"]
    assert match["on"] == "energy_j" and match["achieved"] <= target < match["next_step"]
    pruned = deploy(model, SHAPE, ARRAY, ("vwsdk",), MappingOptions(), cost_preset="isaac")
    assert pruned.energy_j("vwsdk") == pytest.approx(match["achieved"], rel=1e-12)


def test_magnitude_prune_cannot_buy_cycles(resnet20):
    dense = deploy(resnet20, SHAPE, ARRAY, ("sdk",), MappingOptions()).summary("sdk").cycles
    m, ctx = _ctx(copy.deepcopy(resnet20), "magnitude-prune", target_cycles=dense - 1, match_mapping="sdk")
    with pytest.raises(ConfigError, match="unstructured zeros do not change the mapped shapes"):
        m.apply(copy.deepcopy(resnet20), ctx)
    model = copy.deepcopy(resnet20)
    m, ctx = _ctx(model, "magnitude-prune", target_cycles=dense, match_mapping="sdk")
    step = m.apply(model, ctx)
    assert step.summary["match"]["achieved"] == dense and step.summary["sparsity"] == 0.0


@pytest.mark.parametrize("options, message", [
    ({"target_cycles": 10, "target_energy_j": 1e-6}, "not both"),
    ({"target_cycles": 10, "target_params": 1000}, "not several"),
    ({"match_mapping": "nope"}, "allowed: im2col, sdk, vwsdk, flex, best"),
])
def test_target_errors_name_the_options(resnet20, options, message):
    with pytest.raises(ConfigError, match=message):
        m, ctx = _ctx(copy.deepcopy(resnet20), "filter-prune", **options)
        m.apply(copy.deepcopy(resnet20), ctx)
