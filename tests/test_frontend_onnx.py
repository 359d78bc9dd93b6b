"""ONNX frontend: hand-built graphs (checked against onnxruntime's shapes), torch exports of the built-in
models (checked against the torch-traced layer lists), unsupported operators and bad files."""
from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from imcflow.errors import FormatError, UnsupportedLayerError
from imcflow.frontends.onnx_import import import_onnx, load_onnx
from imcflow.layers import ConvLayer
from imcflow.networks import load_network

RNG = np.random.default_rng(0)


def _init(name: str, *shape: int) -> TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes, inits, inputs, outputs, opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _hand_built_model():
    """Grouped, dilated, asymmetric-padded, auto_pad SAME_UPPER + non-square kernel convs, BN, Gemm,
    MatMul on a Constant."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 20, 18])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
            for n in ("y_grp", "y_dil", "y_asym", "y_same", "y_out")]
    bn = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in
          (("bn.s", np.ones(16)), ("bn.b", np.zeros(16)), ("bn.m", np.zeros(16)), ("bn.v", np.ones(16)))]
    nodes = [
        helper.make_node("Conv", ["x", "grp.weight", "grp.bias"], ["y_grp"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y_grp"], ["r1"]),
        helper.make_node("Conv", ["r1", "dil.weight"], ["y_dil"], dilations=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("BatchNormalization", ["y_dil", "bn.s", "bn.b", "bn.m", "bn.v"], ["b1"]),
        # pads = [top, left, bottom, right]
        helper.make_node("Conv", ["b1", "asym.weight"], ["y_asym"], pads=[0, 1, 1, 2], strides=[2, 1]),
        helper.make_node("Conv", ["y_asym", "w_same"], ["y_same"], auto_pad="SAME_UPPER", strides=[2, 2],
                         name="conv_same"),
        helper.make_node("GlobalAveragePool", ["y_same"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["g"], transB=1),
        helper.make_node("Constant", [], ["proj"], value=_init("proj_t", 10, 4)),
        helper.make_node("MatMul", ["g", "proj"], ["y_out"]),
    ]
    inits = [_init("grp.weight", 16, 2, 3, 3), _init("grp.bias", 16), _init("dil.weight", 16, 16, 3, 3),
             *bn, _init("asym.weight", 8, 16, 3, 3), _init("w_same", 8, 8, 3, 2), _init("fc.weight", 10, 8),
             _init("fc.bias", 10)]
    return _model(nodes, inits, [x], outs)


EXPECTED = (
    ConvLayer("grp", 8, 16, 3, input_size=(20, 18), padding=1, groups=4, bias=True),
    ConvLayer("dil", 16, 16, 3, input_size=(20, 18), padding=2, dilation=2),
    # H: pads (0, 1) -> padding 0 on 20+1; W: pads (1, 2) -> padding 1 on 18+1
    ConvLayer("asym", 16, 8, 3, input_size=(21, 19), padding=(0, 1), stride=(2, 1)),
    # SAME_UPPER, s=2 on 10 x 19: out 5 x 10, total pads 1 and 1 -> (0, 1) each
    ConvLayer("conv_same", 8, 8, (3, 2), input_size=(11, 20), padding=0, stride=2),
    ConvLayer("fc", 8, 10, 1, kind="linear", bias=True),
    ConvLayer("fc2", 10, 4, 1, kind="linear"),
)


def test_hand_built_graph_layers_and_shapes_match_onnxruntime(tmp_path):
    path = tmp_path / "hand.onnx"
    model = _hand_built_model()
    onnx.save(model, path)
    result = import_onnx(str(path))
    net = result.network
    assert net.layers == EXPECTED
    assert result.unsupported == ()
    assert result.passed_over == {"Relu": 1, "BatchNormalization": 1, "GlobalAveragePool": 1,
                                  "Flatten": 1, "Constant": 1}
    assert net.input_shape == (8, 20, 18)  # the batch dimension N may stay symbolic
    asym = net.meta["onnx"]["asymmetric_pads"]
    assert asym["asym"] == {"pads": [[0, 1], [1, 2]], "onnx_input_size": [20, 18], "input_size": [21, 19]}
    assert asym["conv_same"]["pads"] == [[0, 1], [0, 1]]
    # Ground truth: onnxruntime's output shapes of every conv equal the layers' output sizes.
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"x": RNG.standard_normal((1, 8, 20, 18)).astype(np.float32)})
    for layer, out in zip(EXPECTED[:4], outs[:4], strict=True):
        assert out.shape[2:] == layer.output_size(), layer.name
        assert out.shape[1] == layer.out_channels
    assert outs[4].shape == (1, 4)


def test_symbolic_sizes_need_an_input_shape(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = tmp_path / "sym.onnx"
    onnx.save(_model([helper.make_node("Conv", ["x", "c.weight"], ["y"], pads=[1, 1, 1, 1])],
                     [_init("c.weight", 4, 3, 3, 3)], [x], [y]), path)
    with pytest.raises(UnsupportedLayerError, match="--input"):
        load_network(str(path))
    net = load_network(str(path), (3, 16, 12))
    assert net.layers == (ConvLayer("c", 3, 4, 3, input_size=(16, 12), padding=1),)
    assert net.input_shape == (3, 16, 12)


def test_unsupported_operators_are_all_listed_in_one_error(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b", "c", "d")]
    nodes = [
        helper.make_node("Conv", ["x", "ok.weight"], ["a"]),
        helper.make_node("ConvTranspose", ["x", "up.weight"], ["b"], name="up"),
        helper.make_node("Gather", ["emb.weight", "ids"], ["c"], name="embed"),
        helper.make_node("Foo", ["x", "foo.weight"], ["d"], name="custom", domain="my.ops"),
    ]
    model = _model(nodes, [_init("ok.weight", 4, 4, 1, 1), _init("up.weight", 4, 2, 2, 2),
                           _init("emb.weight", 100, 16), _init("foo.weight", 4, 4)], [x, ids], outs)
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    path = tmp_path / "mixed.onnx"
    onnx.save(model, path)
    result = import_onnx(str(path))
    assert [l.name for l in result.network.layers] == ["ok"]
    assert [(u.node, u.op_type) for u in result.unsupported] == [("up", "ConvTranspose"), ("embed", "Gather"),
                                                                  ("custom", "Foo")]
    assert "transposed convolution" in result.unsupported[0].reason
    assert "emb.weight [100, 16]" in result.unsupported[1].reason
    with pytest.raises(UnsupportedLayerError) as err:
        load_network(str(path))
    message = str(err.value)
    assert "3 operator(s)" in message and "1 layer(s) could be" in message
    for word in ("'up'", "'embed'", "'custom'"):
        assert word in message
    assert result.to_frame()["status"].tolist() == ["mapped"] + ["unsupported"] * 3


def test_external_data_is_read_and_checked(tmp_path):
    model = _hand_built_model()
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert os.path.getsize(tmp_path / "weights.bin") > 0
    assert load_onnx(str(path)).layers == EXPECTED
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated"):
        load_onnx(str(path))
    os.remove(tmp_path / "weights.bin")
    with pytest.raises(FormatError, match="'weights.bin', which is missing"):
        load_onnx(str(path))


@pytest.mark.parametrize("content, words", [
    (b"", ["empty"]),
    (b"hello, this is not a model\n", ["not an ONNX model"]),
    (b"name: x\nlayers: []\n", ["not an ONNX model"]),
    (b"\x00\x01\x02\x03" * 10, ["not an ONNX model"]),
])
def test_files_that_are_not_onnx(tmp_path, content, words):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(FormatError) as err:
        load_network(str(path))
    for w in words:
        assert w in str(err.value)
    assert str(path) in str(err.value)


def test_truncated_onnx_file(tmp_path):
    good = _hand_built_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(good[: len(good) // 3])
    with pytest.raises(FormatError, match="not an ONNX model"):
        load_network(str(path))


# --- torch exports of the built-in models ---------------------------------------------------------

def _export(name: str, path, dynamo: bool) -> None:
    from imcflow.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = load_network(name).input_shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *shape),), str(path), dynamo=dynamo, verbose=False)


def _fields(layer: ConvLayer) -> dict:
    d = layer.to_dict()
    d.pop("bias")  # the legacy exporter folds BatchNorm into the conv, which then has a bias
    return d


@pytest.mark.parametrize("name, dynamo", [("resnet18", True), ("resnet20", False), ("mobilenetv2", False)])
def test_torch_export_equals_torch_trace(tmp_path, name, dynamo):
    torch.set_num_threads(1)
    path = tmp_path / f"{name}.onnx"
    _export(name, path, dynamo)
    if dynamo:  # torch 2.13's exporter writes weights to an external data file
        assert os.path.exists(str(path) + ".data")
    traced = load_network(name)
    result = import_onnx(str(path))
    assert result.unsupported == ()
    assert [_fields(l) for l in result.network.layers] == [_fields(l) for l in traced.layers]
    assert result.network.input_shape == traced.input_shape


def test_matmul_behind_transpose_on_a_token_sequence_and_weights_inside_control_flow(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7, 16])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z", "s")]
    branch_out = helper.make_tensor_value_info("bz", TensorProto.FLOAT, None)
    then = helper.make_graph([helper.make_node("Conv", ["x4", "inner.weight"], ["bz"])], "then", [], [branch_out],
                             initializer=[_init("inner.weight", 2, 2, 1, 1)])
    other = helper.make_graph([helper.make_node("Identity", ["x4"], ["bz"])], "else", [], [branch_out])
    nodes = [
        helper.make_node("Transpose", ["proj.weight"], ["wt"], perm=[1, 0]),     # torch Linear: W is (out, in)
        helper.make_node("MatMul", ["x", "wt"], ["y"]),
        helper.make_node("MatMul", ["x", "x_t"], ["s"]),                         # activation x activation
        helper.make_node("Transpose", ["x"], ["x_t"], perm=[0, 2, 1]),
        helper.make_node("Reshape", ["x", "shape4"], ["x4"]),
        helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=other, name="maybe"),
    ]
    inits = [_init("proj.weight", 32, 16), numpy_helper.from_array(np.array([1, 2, 7, 8]), "shape4")]
    # keep the node list topologically sorted for the checker: x_t before its use
    nodes[2], nodes[3] = nodes[3], nodes[2]
    path = tmp_path / "seq.onnx"
    onnx.save(_model(nodes, inits, [x, cond], outs), path)
    result = import_onnx(str(path))
    assert result.network.layers == (ConvLayer("proj", 16, 32, 1, input_size=(7, 1), kind="linear"),)
    assert result.passed_over["MatMul"] == 1
    assert [(u.node, u.op_type) for u in result.unsupported] == [("maybe", "If")]
    assert "Conv" in result.unsupported[0].reason


def test_yaml_and_csv_frontends_work_without_torch(tmp_path):
    import subprocess
    import sys

    csv = tmp_path / "n.csv"
    csv.write_text("32,32,3,3,3,16,1,1\n1,1,4096,1,1,10,0,1\n")
    code = (f"import sys; sys.modules['torch'] = None\n"
            f"from imcflow.networks import load_network\n"
            f"from imcflow import map_network, ArraySpec\n"
            f"a = load_network({os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'examples', 'my_net.yaml'))!r})\n"
            f"b = load_network({str(csv)!r})\n"
            f"print(len(a.layers), len(b.layers), map_network(b, ArraySpec(64, 64)).totals('im2col').cycles > 0)\n"
            f"assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "2", "True"]
