"""Issue 17, findings 5-8: bounded work on huge inputs, argument validation shared by the API and the
CLI, no silent nonsense, and ONNX graphs mapped whole (or refused by node)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _limits import time_limit
from imcflow import ArraySpec, ConvLayer, map_layer, map_network
from imcflow.cli import build_parser, main
from imcflow.errors import ConfigError, ImcflowError, UnsupportedLayerError
from imcflow.layers import Network
from imcflow.mapping import search
from imcflow.mapping.flex import optimal_flex_windows
from imcflow.mapping.geometry import LayerProblem, candidate_sizes
from imcflow.mapping.reference import flex_loop, vwsdk_loop
from imcflow.mapping.vwsdk import optimal_windows
from imcflow.validate import FINITE_FLOAT

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


# --- finding 5: bounded work ---------------------------------------------------------------------

@given(st.integers(1, 200_000), st.one_of(st.none(), st.integers(0, 300_000)))
@settings(max_examples=150)
def test_capped_candidate_sizes_equal_the_full_enumeration(n, cap):
    full = np.unique(-(-n // np.arange(1, n + 1)))  # the O(n) definition the search used before
    expected = full if cap is None else full[full <= cap]
    assert candidate_sizes(n, cap).tolist() == expected.tolist()


@st.composite
def small_problems(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    return LayerProblem(draw(st.integers(1, 30)), draw(st.integers(1, 30)), draw(st.integers(1, 4)),
                        draw(st.integers(1, 4)), draw(st.integers(1, 20)), draw(st.integers(1, 20)),
                        groups, draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                        draw(st.integers(1, 2)), draw(st.integers(1, 2)))


tiny_arrays = st.lists(st.builds(ArraySpec, st.integers(1, 80), st.integers(1, 80)), min_size=1,
                       max_size=3)


@given(small_problems(), tiny_arrays, st.sampled_from([1, 3, 50, 1 << 20]))
@settings(max_examples=120)
def test_capped_and_chunked_searches_equal_the_exhaustive_loops(problem, arrays, chunk):
    """The window caps and block-wise evaluation never change the result: the searches equal the
    plain loops over every (a, b) in [1, Ho] x [1, Wo], for tiny blocks (many chunks) too."""
    with mock.patch.object(search, "CHUNK_ELEMENTS", chunk):
        vw = optimal_windows(problem, arrays)
        fx = optimal_flex_windows(problem, arrays)
    for array, got_vw, got_fx in zip(arrays, vw, fx, strict=False):
        loop = vwsdk_loop(problem, array)
        assert got_vw == (None if loop is None else loop[1:])
        assert got_fx == flex_loop(problem, array)[1:]


def test_flex_window_cap_does_not_grow_with_the_map():
    from imcflow.mapping.flex import flex_window_cap

    caps = [flex_window_cap(LayerProblem(n, n, 3, 3, 64, 64), [ArraySpec(512, 512)])(None)
            for n in (56, 10**4, 10**9)]
    assert caps == [128, 128, 128]


HUGE = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))  # 1.5 GiB address space
    from imcflow import ArraySpec, MappingOptions, map_network
    from imcflow.layers import parse_layer_spec
    out = {}
    for spec, search in (("1000000000,1000000000,3,3,64,64", "optimal"),
                         ("1000000,1000000,3,3,64,64", "paper"),
                         ("100000,100000,1,1,1,1", "optimal")):
        layer = parse_layer_spec(spec)
        big = ArraySpec(1 << 20, 1 << 20) if spec.startswith("100000,") else ArraySpec(512, 512)
        r = map_network([layer], big, options=MappingOptions(search=search))
        out[spec] = {m: r.layers[0][m].cycles for m in r.methods}
    json.dump(out, sys.stdout)
""")


def test_huge_layers_map_in_bounded_time_and_memory():
    """Before: 11.6 GiB and no output for 10^9 x 10^9; flex at 10^6 tried to allocate 39.5 GiB."""
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", HUGE], capture_output=True, text=True, timeout=240,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    giga = out["1000000000,1000000000,3,3,64,64"]
    ho = 10**9 - 2
    assert giga["im2col"] == ho * ho * 2  # ceil(576/512) row tiles, one column tile
    assert giga["flex"] <= giga["vwsdk"] <= giga["im2col"]
    assert out["1000000,1000000,3,3,64,64"]["vwsdk"] < out["1000000,1000000,3,3,64,64"]["im2col"]
    # 10^10 outputs, every window fits one 2^20 x 2^20 array: flex needs about 10^10 / 2^20 cycles
    assert out["100000,100000,1,1,1,1"]["flex"] < 10**10 // (1 << 19)


def test_counts_past_64_bits_are_refused_not_wrapped():
    layer = ConvLayer("big", 2**31 - 1, 2**31 - 1, 3, input_size=2**31 - 1)
    with pytest.raises(ConfigError, match="2\\^61"):
        map_layer(layer, ArraySpec(512, 512), "flex")
    with pytest.raises(ConfigError, match="input_size must be <= 2147483647, got 2147483648"):
        ConvLayer("c", 1, 1, 1, input_size=2**31)


def test_numpy_integer_fields_become_python_ints():
    layer = ConvLayer("c", np.int32(50000), np.int32(50000), np.int64(3), input_size=np.int32(1000),
                      groups=np.int16(1))
    assert all(type(v) is int for v in (layer.in_channels, layer.out_channels, layer.groups,
                                        *layer.kernel_size, *layer.input_size))
    assert layer.macs == 998 * 998 * 50000 * 50000 * 9 > 0


def test_cost_tile_list_does_not_grow_with_column_tiles():
    """Before, a 1 x 1 array listed rows x cols tiles (ResNet-50: minutes in `imcflow cost`)."""
    from imcflow.cost.counts import count_layer

    layer = ConvLayer("c", 512, 512, 3, input_size=7, padding=1)
    array = ArraySpec(1, 1)
    counts = count_layer(layer, map_layer(layer, array, "im2col"), array)
    assert len(counts.tiles) == 3 * 3 * 512  # one entry per row tile, columns merged
    assert sum(t.count for t in counts.tiles) == counts.arrays == 4608 * 512
    assert counts.activations == 49 * 4608 * 512


def test_duplicate_layer_names_are_found_in_linear_time():
    layers = [ConvLayer(f"l{i}", 1, 1, 1) for i in range(60_000)]
    with time_limit(30):  # the quadratic check needed minutes here
        assert len(Network("n", tuple(layers))) == 60_000
        with pytest.raises(ConfigError, match=r"duplicate layer names \['l7'\]"):
            Network("n", (*layers, ConvLayer("l7", 1, 1, 1)))


@pytest.mark.parametrize("argv, needed", [
    (["--layer", "2048,2048,3,3,64,64"], "24.0 GiB"),
    (["--layer", "8,8,3,3,2,2", "--batch", "10000000"], "89.4 GiB"),
])
def test_verify_refuses_before_allocating(argv, needed, capsys):
    assert main(["verify", *argv, "--method", "im2col"]) == 2
    err = capsys.readouterr().err
    assert needed in err and "limit of 4 GiB" in err and "Traceback" not in err


# --- finding 6: public API validation ------------------------------------------------------------

def _api_calls():
    from imcflow.frontends.neurosim import read_neurosim_csv
    from imcflow.hardware.array import parse_array
    from imcflow.mapping import map_sweep
    from imcflow.models.registry import create_model
    from imcflow.networks import load_network
    from imcflow.sim.effects import AdcSpec, NoiseSpec, SimConfig
    from imcflow.sim.tiles import build_tiles
    from imcflow.sim.verify import verify_layer, verify_network
    from imcflow.sim.wrapper import wrap_model
    from imcflow.train.loop import TrainConfig, fit

    net = load_network("resnet18-paper")
    layer = net.layers[0]
    a = ArraySpec(64, 64)
    return [
        (lambda: load_network(123), ["network", "123"]),
        (lambda: load_network("resnet18-paper", input_shape="3x32x32"), ["input_shape", "3x32x32"]),
        (lambda: map_network("resnet20", a), ["network", "'resnet20'", "load_network"]),
        (lambda: map_network(net, "64x64"), ["array", "'64x64'", "ArraySpec"]),
        (lambda: map_network(net, a, methods=[3]), ["methods", "3"]),
        (lambda: map_sweep(net, a), ["arrays", "ArraySpec"]),
        (lambda: map_layer(layer, None), ["array", "None"]),
        (lambda: parse_array(None), ["array", "None"]),
        (lambda: build_tiles(layer, np.zeros((64, 3, 7, 7)), array=None), ["array", "None"]),
        (lambda: verify_network(net, "64x64"), ["array", "'64x64'"]),
        (lambda: verify_layer("conv1", a, "im2col"), ["layer", "'conv1'"]),
        (lambda: read_neurosim_csv("/nonexistent.csv"), ["path", "/nonexistent.csv"]),
        (lambda: read_neurosim_csv(42), ["path", "42"]),
        (lambda: create_model("vgg8-cifar", input_size=4), ["input_size", "4"]),
        (lambda: create_model(7), ["model name", "7"]),
        (lambda: fit("model", None), ["model", "'model'"]),
        (lambda: SimConfig(adc="6"), ["adc", "'6'", "AdcSpec"]),
        (lambda: SimConfig(noise=0.1), ["noise", "0.1"]),
        (lambda: SimConfig(weight_bits=64), ["weight_bits", "64", "[1, 32]"]),
        (lambda: AdcSpec(64), ["adc_bits", "64", "[1, 32]"]),
        (lambda: AdcSpec(6, full_scale=math.inf), ["full_scale", "inf"]),
        (lambda: NoiseSpec(sigma=math.inf), ["sigma", "inf"]),
        (lambda: NoiseSpec(stuck_on_rate=math.nan), ["stuck_on_rate", "nan"]),
        (lambda: TrainConfig(lr=math.inf), ["lr", "inf"]),
        (lambda: TrainConfig(weight_decay=math.nan), ["weight_decay", "nan"]),
        (lambda: wrap_model(object(), a), ["model", "object"]),
        (lambda: ArraySpec(64, 64, weight_bits=33), ["weight_bits", "33"]),
    ]


def test_public_functions_refuse_wrong_arguments_naming_them():
    for call, words in _api_calls():
        with pytest.raises(ImcflowError) as err:
            call()
        for word in words:
            assert word in str(err.value), (words, str(err.value))


def test_api_and_cli_give_the_same_message(capsys):
    from imcflow.sim.effects import NoiseSpec

    with pytest.raises(ConfigError) as err:
        NoiseSpec(sigma=-1.0)
    assert main(["verify", "--layer", "8,8,3,3,2,2", "--sigma", "-1"]) == 2
    assert str(err.value) in capsys.readouterr().err


# --- finding 7: silent nonsense ------------------------------------------------------------------

def _float_actions(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for _, a in _float_actions(sub):
                    yield name, a
        else:
            yield None, action


def test_every_float_option_refuses_inf_and_nan(capsys):
    parser = build_parser()
    floats = [(cmd, a) for cmd, a in _float_actions(parser) if a.type in (float, FINITE_FLOAT)]
    assert {cmd for cmd, _ in floats} >= {"verify", "train", "compress"}
    assert all(a.type is FINITE_FLOAT for _, a in floats)  # none left with plain float
    for cmd, action in floats:
        for bad in ("inf", "nan", "-inf"):
            with pytest.raises(SystemExit) as done:
                parser.parse_args([cmd, f"{action.option_strings[0]}={bad}"])
            assert done.value.code == 2
            assert f"{action.option_strings[0]}: must be a finite number, got '{bad}'" in \
                capsys.readouterr().err


@pytest.mark.parametrize("override", ["adc.bits=64", "adc.bits=2000", "dac.bits=40",
                                      "defaults.weight_bits=33"])
def test_bit_fields_are_bounded_alike_everywhere(override, capsys):
    assert main(["cost", "--layer", "8,8,3,3,2,2", "--set", override]) == 2
    err = capsys.readouterr().err
    assert override.split("=")[0] in err and "[1, " in err


@pytest.mark.parametrize("argv, words", [
    (["map", "--layer", "8,8,3,3,2,2", "--input", "3x8x8"], ["--input", "--layer"]),
    (["map", "resnet18-paper", "--input", "3x32x32"], ["resnet18-paper", "drop --input"]),
])
def test_input_shape_that_would_be_ignored_is_refused(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words)


def test_csv_input_shape_refused_and_bom_accepted(tmp_path):
    from imcflow.networks import load_network

    path = tmp_path / "NetWork.csv"
    path.write_bytes(b"\xef\xbb\xbf32,32,3,3,3,16,0,1\n1,1,4096,1,1,10,0,1\n")
    assert [l.in_channels for l in load_network(str(path)).layers] == [3, 4096]
    with pytest.raises(ConfigError, match="drop --input"):
        load_network(str(path), (3, 32, 32))
    js = tmp_path / "net.json"
    js.write_bytes(b"\xef\xbb\xbf" + json.dumps({"layers": [{"name": "c", "in_channels": 2, "out_channels": 4,
                                                            "kernel_size": 1, "input_size": 1}]}).encode())
    assert load_network(str(js)).layers[0].out_channels == 4


def test_array_and_simconfig_bit_conflict_is_refused():
    torch = pytest.importorskip("torch")
    from imcflow.sim.effects import SimConfig
    from imcflow.sim.wrapper import on_crossbars

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    with pytest.raises(ConfigError, match="weight_bits conflict.*weight_bits=8.*weight_bits=4"), \
            on_crossbars(model, ArraySpec(64, 64, weight_bits=8), config=SimConfig(weight_bits=4)):
        pass
    with on_crossbars(model, ArraySpec(64, 64, weight_bits=4), config=SimConfig(weight_bits=4)) as m:
        assert m(torch.ones(1, 1, 4, 4)).shape == (1, 2, 2, 2)


# --- ONNX: validated against their own weights (finding 7), whole graphs mapped (finding 8) --------

def _onnx_model(nodes, inits, x_shape, opset=17):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("case", ["conv-channels", "gemm-transB0"])
def test_onnx_weights_that_do_not_fit_their_input_are_refused(case, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from imcflow.frontends.onnx_import import load_onnx

    rng = np.random.default_rng(0)
    if case == "conv-channels":  # weight (8, 5, 3, 3) on a 3-channel input
        w = numpy_helper.from_array(rng.standard_normal((8, 5, 3, 3)).astype(np.float32), "w")
        model = _onnx_model([helper.make_node("Conv", ["x", "w"], ["y"], name="bad_conv")], [w],
                            (1, 3, 8, 8))
        feed = np.zeros((1, 3, 8, 8), np.float32)
    else:  # transB=0: B must be (K, N) = (16, 10); a (10, 16) B is the wrong way round
        w = numpy_helper.from_array(rng.standard_normal((10, 16)).astype(np.float32), "w")
        model = _onnx_model([helper.make_node("Gemm", ["x", "w"], ["y"], name="bad_gemm", transB=0)],
                            [w], (1, 16))
        feed = np.zeros((1, 16), np.float32)
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    ort = pytest.importorskip("onnxruntime")
    with pytest.raises(Exception, match="."):  # noqa: B017 - ground truth: onnxruntime refuses it too
        ort.InferenceSession(str(path)).run(None, {"x": feed})
    with pytest.raises(UnsupportedLayerError, match="bad_conv|bad_gemm"):
        load_onnx(str(path))


def test_weights_computed_from_constants_are_mapped(tmp_path):
    """A Gemm whose weight is ConstantOfShape(stored shape), as the model zoo files have it."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from imcflow.frontends.onnx_import import load_onnx

    shape = numpy_helper.from_array(np.array([10, 16], dtype=np.int64), "w_shape")
    nodes = [helper.make_node("ConstantOfShape", ["w_shape"], ["fc_w"]),
             helper.make_node("Gemm", ["x", "fc_w"], ["y"], transB=1, name="fc")]
    path = tmp_path / "computed.onnx"
    onnx.save(_onnx_model(nodes, [shape], (1, 16)), path)
    assert load_onnx(str(path)).layers == (ConvLayer("fc", 16, 10, 1, kind="linear"),)


def _zoo_models():
    try:
        import onnx
    except ImportError:
        return []
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    return sorted(os.path.join(light, f) for f in os.listdir(light) if f.endswith(".onnx")) \
        if os.path.isdir(light) else []


@pytest.mark.parametrize("path", _zoo_models(), ids=os.path.basename)
def test_model_zoo_graphs_map_every_weight_layer(path):
    """The onnx package's shape-only model zoo copies (AlexNet, VGG-19, ResNet-50, ...): every Conv,
    Gemm and MatMul becomes a layer. Before, AlexNet and ZFNet kept 5 of 8, VGG-19 16 of 19."""
    import onnx

    from imcflow.networks import load_network

    graph = onnx.load(path, load_external_data=False).graph
    expected = sum(n.op_type in ("Conv", "Gemm", "MatMul") for n in graph.node)
    net = load_network(path)
    assert len(net.layers) == expected
    assert map_network(net, ArraySpec(512, 512), ["im2col"]).totals("im2col").cycles > 0
