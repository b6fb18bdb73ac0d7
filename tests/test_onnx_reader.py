"""read_onnx against independent ground truth: the search space's own IR of the exported arch (op by op),
MACs counted by PyTorch forward hooks on the exported module, and hand-built ONNX graphs."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from estimators.macs import op_macs, op_params, total_macs, total_params
from estimators.onnx_reader import SUPPORTED_OPS, read_onnx

torch = pytest.importorskip("torch")
nn = torch.nn


def export(model, input_shape: tuple[int, ...], path: Path) -> Path:
    """The project's export settings (tinynas.export.onnx_export): legacy exporter, eval, folded BN."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *input_shape),), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"], do_constant_folding=True,
                          training=torch.onnx.TrainingMode.EVAL)
    return path


def _signature(graph):
    return [(op.kind, op_macs(graph, op), op_params(graph, op), graph.tensors[op.outputs[0]].shape,
             op.attrs.get("padding"), op.attrs.get("activation")) for op in graph.ops]


# -- exported MCUNet archs vs the space's IR --------------------------------------------------------
@pytest.mark.parametrize("seed,in_channels,classes", [(0, 3, 10), (1, 1, 12), (2, 3, 2)])
def test_exported_mcunet_arch_matches_to_ir_op_by_op(seed, in_channels, classes, tmp_path):
    from search_spaces import get_space

    space = get_space("mcunet", {"resolutions": [32, 48]})
    arch = space.random(random.Random(seed))
    h, w, c = space.input_shape(arch, in_channels)
    path = export(space.build_torch(arch, in_channels, classes), (c, h, w), tmp_path / "m.onnx")
    expected = space.to_ir(arch, in_channels, classes)
    graph = read_onnx(path)
    assert _signature(graph) == _signature(expected)
    assert total_macs(graph) == total_macs(expected) and total_params(graph) == total_params(expected)
    assert graph.tensors[graph.inputs[0]].shape == (1, h, w, c)


# -- a model using the other supported ops, against PyTorch hooks ----------------------------------
class _Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(16)                                   # after a pool: not foldable
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 5, 1, 2, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1),
                                nn.Sigmoid())
        self.left, self.right = nn.Conv2d(16, 8, 1), nn.Conv2d(16, 24, 3, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(32 * 4 * 4, 5)

    def forward(self, x):
        x = self.bn(self.pool(self.stem(x)))
        x = self.dw(x)
        x = x * self.se(x)
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = torch.flatten(self.avg(x), 1)
        return torch.softmax(self.fc(x), dim=1)


def _hook_macs(model, input_shape) -> int:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in handles:
        h.remove()
    return total


def test_mixed_ops_macs_params_and_kinds(tmp_path):
    torch.manual_seed(0)
    model = _Mixed()
    graph = read_onnx(export(model, (3, 32, 32), tmp_path / "mixed.onnx"))
    kinds = [op.kind for op in graph.ops]
    assert total_macs(graph) == _hook_macs(model, (3, 32, 32))
    # Folded BN: a conv's bias stands for it; conv and linear weights + one bias per output channel.
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert total_params(graph) == sum(m.weight.numel() + m.weight.shape[0] for m in weighted)
    for kind in ("HARD_SWISH", "MAX_POOL_2D", "MUL", "ADD", "DEPTHWISE_CONV_2D", "MEAN", "LOGISTIC",
                 "CONCATENATION", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"):
        assert kind in kinds, kind
    assert "RELU" not in kinds                                          # both ReLUs fused
    assert kinds.count("MUL") == 2 and kinds.count("ADD") == 1         # standalone BN: MUL + ADD; SE gate
    dw = next(op for op in graph.ops if op.kind == "DEPTHWISE_CONV_2D")
    assert dw.attrs["activation"] == "relu" and graph.tensors[dw.outputs[0]].shape == (1, 8, 8, 16)
    concat = next(op for op in graph.ops if op.kind == "CONCATENATION")
    assert concat.attrs["axis"] == 3 and graph.tensors[concat.outputs[0]].shape == (1, 8, 8, 32)
    assert graph.tensors[graph.outputs[0]].shape == (1, 5)
    assert all(t.dtype == "int8" for t in graph.activations())


# -- hand-built graphs -------------------------------------------------------------------------------
def _save(tmp_path, nodes, inputs, outputs, initializers=(), name="m") -> Path:
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_matmul_plus_bias_is_one_fully_connected_with_clip_activation(tmp_path):
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("Add", ["y", "b"], ["z"], name="bias"),
             helper.make_node("Clip", ["z", "lo", "hi"], ["out"], name="relu6")]
    g = read_onnx(_save(tmp_path, nodes, [_vi("x", [1, 16])], [_vi("out", [1, 4])], [w, b, lo, hi]))
    assert [op.kind for op in g.ops] == ["FULLY_CONNECTED"]
    assert g.ops[0].attrs["activation"] == "relu6"
    assert total_macs(g) == 16 * 4 and total_params(g) == 16 * 4 + 4


def test_conv_pads_map_to_same_valid_or_explicit_pad(tmp_path):
    w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="same", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"], name="strided", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Conv", ["b", "w3"], ["out"], name="valid")]
    w2 = numpy_helper.from_array(np.ones((4, 8, 3, 3), np.float32), "w2")
    w3 = numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "w3")
    g = read_onnx(_save(tmp_path, nodes, [_vi("x", [1, 4, 8, 8])], [_vi("out", [1, 2, 4, 4])], [w, w2, w3]))
    # 8×8 at stride 2: TF 'same' pads (0, 1), PyTorch's (1, 1) → explicit PAD to 10×10, then 'valid'.
    assert [(op.kind, op.attrs.get("padding")) for op in g.ops] == \
        [("CONV_2D", "same"), ("PAD", None), ("CONV_2D", "valid"), ("CONV_2D", "same")]
    assert total_macs(g) == 8 * 8 * 8 * 9 * 4 + 4 * 4 * 4 * 9 * 8 + 4 * 4 * 2 * 4
    assert total_params(g) == 8 * 36 + 8 + 4 * 72 + 4 + 2 * 4 + 2           # a bias per conv


def test_unsupported_op_names_type_node_and_supported_list(tmp_path):
    path = _save(tmp_path, [helper.make_node("Tanh", ["x"], ["out"], name="my_tanh")],
                 [_vi("x", [1, 4])], [_vi("out", [1, 4])])
    with pytest.raises(ValueError, match=r"'Tanh' \(node 'my_tanh'\); supported: Add, AveragePool") as e:
        read_onnx(path)
    assert all(op in str(e.value) for op in SUPPORTED_OPS)


def test_unsupported_clip_range_is_refused(tmp_path):
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["out"], name="clip3")]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0), ("hi", 3))]
    with pytest.raises(ValueError, match=r"clip3.*\[0.0, 3.0\].*supported ranges"):
        read_onnx(_save(tmp_path, nodes, [_vi("x", [1, 4])], [_vi("out", [1, 4])], inits))


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf\xff\xff")
    with pytest.raises(ValueError, match="broken.onnx"):
        read_onnx(path)
