"""Invariants of the mapping strategies over many random layers and arrays (seeded hypothesis)."""
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from imcflow import ArraySpec, ConvLayer, MappingOptions, map_layer, map_network
from imcflow.mapping.geometry import LayerProblem
from imcflow.mapping.reference import flex_loop, sdk_loop, vwsdk_loop
from imcflow.mapping.sdk import sdk_windows
from imcflow.mapping.vwsdk import optimal_windows

METHODS = ("im2col", "sdk", "vwsdk", "flex")


@st.composite
def layers(draw, max_hw=40, max_ch=300, real=True):
    groups = draw(st.sampled_from([1, 1, 1, 2, 4])) if real else 1
    ic = groups * draw(st.integers(1, max_ch // groups))
    oc = groups * draw(st.integers(1, max_ch // groups))
    if real and draw(st.booleans()) and groups == 1:  # depthwise
        groups = ic = oc = draw(st.integers(2, 64))
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if real else (1, 1)
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3))) if real else (0, 0)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if real else (1, 1)
    ext_h, ext_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    h = draw(st.integers(max(1, ext_h - 2 * padding[0]), max_hw))
    w = draw(st.integers(max(1, ext_w - 2 * padding[1]), max_hw))
    return ConvLayer("l", ic, oc, (kh, kw), input_size=(h, w), stride=stride, padding=padding,
                     dilation=dilation, groups=groups)


arrays = st.builds(lambda r, c, wb, cb: ArraySpec(r, c, cell_bits=cb, weight_bits=wb),
                   st.integers(8, 1024), st.integers(8, 1024),
                   st.sampled_from([1, 1, 2, 4, 8]), st.sampled_from([1, 2]))


DEFAULT_OPTIONS = MappingOptions()


def all_methods(layer, array, options=DEFAULT_OPTIONS):
    return {m: map_layer(layer, array, m, options) for m in METHODS}


@given(layers(), arrays)
def test_bounds_utilization_and_ordering(layer, array):
    ms = all_methods(layer, array)
    for name, m in ms.items():
        assert m.cycles >= m.lower_bound >= 1, name
        assert 0 < m.tile_utilization <= 1 + 1e-12, name
        assert 0 < m.avg_utilization <= 1 + 1e-12, name
        assert 0 < m.mac_efficiency <= 1 + 1e-12, name
        sets = -(-m.groups // m.groups_per_tile)
        assert m.arrays == m.row_tiles * m.col_tiles * sets
        assert m.cycles == m.windows * m.row_tiles * m.col_tiles * sets
    assert ms["sdk"].cycles <= ms["im2col"].cycles
    assert ms["vwsdk"].cycles <= ms["im2col"].cycles
    for other in ("im2col", "sdk", "vwsdk"):
        assert ms["flex"].cycles <= ms[other].cycles, other


@given(layers(max_hw=30, real=False), arrays)
def test_optimal_vwsdk_never_worse_than_paper_search(layer, array):
    paper = map_layer(layer, array, "vwsdk", MappingOptions("paper", "paper"))
    optimal = map_layer(layer, array, "vwsdk", MappingOptions("paper", "optimal"))
    assert optimal.cycles <= paper.cycles


@given(layers(max_hw=24, max_ch=80), arrays)
def test_fast_searches_equal_the_plain_loop(layer, array):
    problem = LayerProblem.from_layer(layer)
    loop = vwsdk_loop(problem, array)
    fast = optimal_windows(problem, [array])[0]
    assert (loop is None) == (fast is None)
    if loop:
        assert fast == loop[1:]
    for search in ("optimal", "paper"):
        assert sdk_windows(problem, [array], MappingOptions(search=search)) == \
            [sdk_loop(problem, array, search)]
    cycles, a, b = flex_loop(problem, array)
    flex = map_layer(layer, array, "flex")
    assert (flex.cycles, flex.window.a, flex.window.b) == (cycles, a, b)


@given(layers(), arrays, st.integers(1, 4), st.integers(1, 4))
def test_larger_array_never_costs_more_except_sdk(layer, array, fr, fc):
    bigger = replace(array, rows=array.rows * fr, cols=array.cols * fc)
    for m in ("im2col", "vwsdk", "flex"):
        assert map_layer(layer, bigger, m).cycles <= map_layer(layer, array, m).cycles, m


def test_sdk_is_not_monotone_in_array_size():
    # 3x3x16x16 on a 30x30 output. 128 rows: AR0 = ceil(144/128) = 2, a 256-row budget fits the
    # 4x4 window of n = 2 ((2+2)^2*16 = 256), cycles = 2 * 15 * 15 = 450. 160 rows: AR0 = 1, a
    # 160-row budget only fits n = 1, cycles = 30 * 30 = 900: the larger array is twice as slow.
    layer = ConvLayer("l", 16, 16, 3, input_size=32)
    small, large = ArraySpec(128, 64), ArraySpec(160, 64)
    assert map_layer(layer, small, "sdk").cycles == 450
    assert map_layer(layer, large, "sdk").cycles == 900


@given(layers(real=False), arrays, st.sampled_from(["optimal", "paper"]))
def test_real_geometry_with_stride1_pad0_equals_paper(layer, array, search):
    real = MappingOptions("real", search)
    paper = MappingOptions("paper", search)
    for m in METHODS:
        a, b = map_layer(layer, array, m, real), map_layer(layer, array, m, paper)
        assert a == b, m


@given(st.lists(layers(max_hw=20, max_ch=64), min_size=1, max_size=5), arrays)
def test_best_is_never_worse_than_any_method(layer_list, array):
    net = [replace(l, name=f"l{i}") for i, l in enumerate(layer_list)]
    result = map_network(net, array)
    for report in result.layers:
        assert all(report[report.best].cycles <= report[m].cycles for m in METHODS)
    assert result.totals("best").cycles <= min(result.totals(m).cycles for m in METHODS)


@given(layers(max_hw=24), st.lists(arrays, min_size=1, max_size=6))
def test_mapping_many_arrays_at_once_equals_one_by_one(layer, array_list):
    from imcflow.mapping import get_strategy

    problem = LayerProblem.from_layer(layer)
    for name in ("sdk", "vwsdk", "flex"):
        strategy = get_strategy(name)
        many = strategy.map_many(problem, array_list, MappingOptions())
        assert many == [strategy.map(problem, a, MappingOptions()) for a in array_list]


@given(layers(max_hw=40, real=False), st.lists(arrays, min_size=1, max_size=3))
def test_event_driven_paper_search_equals_the_candidate_loop(layer, arrays_):
    from imcflow.mapping.reference import paper_vwsdk_loop
    from imcflow.mapping.vwsdk import paper_windows

    problem = LayerProblem.from_layer(layer, "paper")
    assert paper_windows(problem, arrays_) == [paper_vwsdk_loop(problem, a) for a in arrays_]
