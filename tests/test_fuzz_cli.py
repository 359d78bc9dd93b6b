"""Fuzz the command line (issue 17): layer strings, network files (YAML, CSV, JSON, ONNX bytes) and
options. Every case must end with exit code 0, 1 or 2 (argparse's usage errors included) within a
bounded time and print no traceback - never an exception escaping ``main``, never a hang.

Seeded and bounded (conftest's derandomized profile, a few dozen examples per test, 30 s per case), so
the module runs in well under a minute.
"""
from __future__ import annotations

import io
import os
import tempfile
from contextlib import redirect_stderr, redirect_stdout

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _limits import time_limit
from imcflow.cli import main

CASE_SECONDS = 30
fuzz = settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), time_limit(CASE_SECONDS):
        try:
            code = main(argv)
        except SystemExit as done:  # argparse: usage errors exit 2, --help exits 0
            code = done.code if isinstance(done.code, int) else 2
    text = err.getvalue()
    assert code in (0, 1, 2), (argv, code, text[-500:])
    assert "Traceback" not in text, (argv, text[-2000:])
    if code == 2:
        assert text.strip(), argv  # a refusal always says why
    return code, text


numbers = st.one_of(st.integers(-3, 70), st.integers(-2, 2**64), st.sampled_from(["", " ", "x", "1e3",
                                                                                    "0x10", "--", "3.5",
                                                                                    "nan", "٣"]))
layer_strings = st.lists(numbers.map(str), min_size=0, max_size=11).map(",".join)
arrays = st.one_of(st.sampled_from(["512x512", "1x1", "64x128", "0x5", "x", "1048577x1", "3*7",
                                    "1048576x1048576"]),
                   st.text(alphabet="0123456789xX* -", max_size=9))
methods = st.sampled_from(["all", "im2col", "sdk", "vwsdk", "flex", "flex,vwsdk", "bogus", ""])


@given(layer_strings, arrays, methods, st.sampled_from(["optimal", "paper"]),
       st.sampled_from(["real", "paper"]), st.sampled_from(["table", "json", "csv"]))
# The cases the issue found: 11.6 GiB and no output; flex tried to allocate 39.5 GiB.
@example("1000000000,1000000000,3,3,64,64", "512x512", "all", "optimal", "real", "csv")
@example("1000000,1000000,3,3,64,64", "512x512", "flex", "optimal", "real", "table")
@fuzz
def test_map_layer_strings_and_options(layer, array, method, search, geometry, fmt):
    run_cli(["map", "--layer", layer, "--array", array, "--method", method, "--search", search,
             "--geometry", geometry, "--format", fmt])


def _yaml_texts():
    scalar = st.one_of(st.integers(-5, 2**40), st.sampled_from(["a", "", "null", "[1, 2]", "{}", "3.5",
                                                                 "-1", ".inf"]))
    field = st.sampled_from(["name", "in_channels", "out_channels", "kernel_size", "input_size",
                             "stride", "padding", "groups", "dilation", "kind", "bias", "rank", "what"])
    layer = st.dictionaries(field, scalar, max_size=8).map(
        lambda d: "  - {" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}")
    doc = st.lists(layer, max_size=4).map(lambda ls: "name: fuzz\nlayers:\n" + "\n".join(ls) + "\n")
    return st.one_of(doc, st.text(max_size=200))


csv_texts = st.one_of(
    st.lists(st.lists(numbers.map(str), min_size=0, max_size=9).map(",".join), max_size=6)
    .map("\n".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")))


def _onnx_bytes():
    pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    def build(ic, oc, k, hw, group, gemm_k):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ic, hw, hw])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        w = numpy_helper.from_array(np.zeros((oc, max(ic // max(group, 1), 1), k, k), np.float32), "w")
        fc = numpy_helper.from_array(np.zeros((gemm_k, 4), np.float32), "fc")
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=group),
                 helper.make_node("Flatten", ["c"], ["f"]),
                 helper.make_node("Gemm", ["f", "fc"], ["y"])]
        model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=[w, fc]),
                                  opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model.SerializeToString()

    small = st.integers(0, 9)
    valid = st.builds(build, small, small, small, st.integers(0, 12), st.integers(0, 3),
                      st.integers(0, 40))

    def corrupt(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
        buf = bytearray(data[:max(cut, 0)] if cut < len(data) else data)
        for pos, val in flips:
            if buf:
                buf[pos % len(buf)] = val
        return bytes(buf)

    return st.one_of(valid, st.binary(max_size=300),
                     st.builds(corrupt, valid, st.integers(0, 400),
                               st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                        max_size=4)))


@given(st.data())
@fuzz
def test_network_files(data):
    kind = data.draw(st.sampled_from([".yaml", ".csv", ".json", ".onnx"]))
    if kind == ".onnx":
        payload = data.draw(_onnx_bytes())
    elif kind == ".csv":
        payload = data.draw(csv_texts).encode("utf-8", "surrogatepass")
    else:
        payload = data.draw(_yaml_texts()).encode("utf-8", "surrogatepass")
    bom = data.draw(st.booleans())
    extra = data.draw(st.sampled_from([[], ["--input", "3x8x8"], ["--input", "0x1"], ["--method", "flex"]]))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net" + kind)
        with open(path, "wb") as fh:
            fh.write((b"\xef\xbb\xbf" if bom and kind != ".onnx" else b"") + payload)
        run_cli(["map", path, "--array", "64x64", *extra])


float_texts = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.sampled_from(["inf", "nan", "-1", "1e400", "0", "x", ""]))
int_texts = st.one_of(st.integers(-3, 70).map(str), st.sampled_from(["0", "-1", "99999999999", "x"]))


@given(int_texts, int_texts, int_texts, float_texts, float_texts, int_texts, int_texts,
       st.sampled_from(["max", "calibrated", "3.5", "inf", "nan", "-2", "x"]))
@fuzz
def test_verify_options(adc_bits, input_bits, batch, sigma, stuck, weight_bits, seed, full_scale):
    run_cli(["verify", "--layer", "6,6,3,3,2,2,1,1", "--array", "16x16", "--method", "flex",
             "--adc-bits", adc_bits, "--input-bits", input_bits, "--batch", batch, "--sigma", sigma,
             "--stuck-on", stuck, "--weight-bits", weight_bits, "--cell-bits", "1", "--seed", seed,
             "--adc-full-scale", full_scale])


@given(st.sampled_from(["adc.bits", "dac.bits", "adc.energy_per_conversion_j", "array.read_time_s",
                        "defaults.weight_bits", "timing.pipelined", "nope.key", "adc"]),
       st.one_of(float_texts, int_texts, st.sampled_from(["true", "[1]", "{a: 1}", "''"])),
       st.sampled_from(["preloaded", "time-multiplexed"]), int_texts)
@fuzz
def test_cost_overrides(key, value, mode, input_bits):
    run_cli(["cost", "--layer", "16,16,3,3,8,8", "--set", f"{key}={value}", "--mode", mode,
             "--input-bits", input_bits, "--array", "64x64"])
