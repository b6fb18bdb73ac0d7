"""Read an ``.onnx`` file into the IR: the int8 TFLite graph an ONNX → TFLite conversion (onnx2tf) runs.

Activations become NHWC int8 tensors (the model is assumed deployed full-int8), batch 1; shapes come from
ONNX shape inference. Conversions:

* ``Conv`` → CONV_2D, or DEPTHWISE_CONV_2D when ``group`` equals the input channels (multiplier 1); its
  padding is 'same' where the pads equal TensorFlow's 'same' padding, else 'valid' (no pads) or an
  explicit PAD + 'valid' (as onnx2tf writes them).
  Every conv gets a per-channel int32 bias, as the converter writes one.
* ``Gemm`` / ``MatMul`` with constant weights → FULLY_CONNECTED (per-channel, as onnx2tf quantizes); an
  ``Add`` of a constant vector right after a bias-less one becomes its bias.
* ``BatchNormalization`` folds into the conv or FC before it (else MUL + ADD by per-channel constants);
  ``Relu`` / ``Clip`` fuse as the activation of the conv, FC or ADD before it (else RELU / RELU6 /
  RELU_N1_TO_1 ops).
* ``GlobalAveragePool`` / ``ReduceMean`` → MEAN; ``AveragePool`` / ``MaxPool``; ``Reshape`` / ``Flatten``
  → RESHAPE; ``Pad``; ``Add`` / ``Mul``; ``Softmax``; ``HardSwish`` (and x · ``HardSigmoid``\(x), how
  opset < 14 writes it) → HARD_SWISH; ``Sigmoid`` → LOGISTIC; ``Concat``.
* ``Constant``, ``Identity`` and ``Dropout`` are resolved while reading (no op).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from estimators.builder import GraphWriter, tf_same_pads
from estimators.ir import Graph, Op, Tensor

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv", "Dropout", "Flatten",
    "Gemm", "GlobalAveragePool", "HardSigmoid", "HardSwish", "Identity", "MatMul", "MaxPool", "Mul", "Pad", "ReduceMean",
    "Relu", "Reshape", "Sigmoid", "Softmax",
)
_ACTIVATION_OPS = {"relu": "RELU", "relu6": "RELU6", "relu_n1_to_1": "RELU_N1_TO_1"}
_CLIP_RANGES = {(0.0, 6.0): "relu6", (0.0, float("inf")): "relu", (-1.0, 1.0): "relu_n1_to_1"}
_FUSES_ACTIVATION = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")
_NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


class _Reader:
    def __init__(self, model, path: Path):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.numpy_helper, self.path = onnx, numpy_helper, path
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in (*graph.value_info, *graph.input, *graph.output):
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{path}: {len(inputs)} graph inputs ({[i.name for i in inputs]}); exactly one is supported")
        shape = self.shapes.get(inputs[0].name, ())
        if len(shape) not in (2, 4) or any(d <= 0 for d in shape[1:]):
            raise ValueError(f"{path}: input {inputs[0].name!r} has shape {shape}; a static N×C×H×W or N×C "
                             "input is required")
        self.b = GraphWriter(graph.name or path.stem, _nhwc((1, *shape[1:]))[1:])
        self.g: Graph = self.b.graph
        self.env: dict[str, str] = {inputs[0].name: self.g.inputs[0]}  # ONNX value → IR tensor
        self.consumers: dict[str, int] = {}
        for node in graph.node:
            for n in node.input:
                self.consumers[n] = self.consumers.get(n, 0) + 1
        self.graph_outputs = {o.name for o in graph.output}
        self.producer: dict[str, Op] = {}  # IR tensor → the op that wrote it
        self.node_of: dict[str, str] = {}  # IR tensor → the ONNX node it stands for (names the op)
        self.hard_sigmoid: dict[str, str] = {}  # HardSigmoid output → its input (ONNX names), pending a Mul

    # -- helpers ------------------------------------------------------------------------------
    def x(self, node, i: int = 0) -> str:
        name = node.input[i]
        if name in self.hard_sigmoid:
            raise ValueError(f"{self.path}: node {node.name!r} ({node.op_type}) reads HardSigmoid output "
                             f"{name!r}; HardSigmoid is supported only as x · HardSigmoid(x) (hard-swish)")
        if name not in self.env:
            raise ValueError(f"{self.path}: node {node.name!r} ({node.op_type}) reads {name!r}, which is "
                             "neither an activation nor supported as a constant there")
        return self.env[name]

    def const(self, node, i: int) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        return self.consts.get(node.input[i])

    def shape(self, onnx_name: str) -> tuple[int, ...]:
        shape = self.shapes.get(onnx_name)
        if shape is None or any(d <= 0 for d in shape):
            raise ValueError(f"{self.path}: shape inference gives no static shape for {onnx_name!r} ({shape})")
        return _nhwc(shape)

    def emit(self, node, kind: str, inputs: list[str], **attrs) -> str:
        """A non-weighted op whose output shape is the inferred one."""
        out = self.g.add_tensor(Tensor(f"{node.name}/out", self.shape(node.output[0]))).name
        return self.finish(node, self.add_op(node, kind, inputs, [out], attrs))

    def add_op(self, node, kind: str, inputs: list[str], outputs: list[str], attrs: dict) -> Op:
        return self.g.add_op(Op(node.name, kind, tuple(inputs), tuple(outputs), attrs))

    def add_const(self, name: str, shape: tuple[int, ...], dtype: str = "int8", channels: int = 1) -> str:
        return self.g.add_tensor(Tensor(name, tuple(int(d) for d in shape) or (1,), dtype, True, channels)).name

    def finish(self, node, op_or_out) -> str:
        out = op_or_out.outputs[0] if isinstance(op_or_out, Op) else op_or_out
        if isinstance(op_or_out, Op):
            self.producer[out] = op_or_out
        else:
            self.producer[out] = self.g.ops[-1]
        self.env[node.output[0]] = out
        self.node_of[out] = node.name
        expected = self.shapes.get(node.output[0])
        if expected and all(d > 0 for d in expected):
            got = self.g.tensors[out].shape
            if tuple(got) != _nhwc(expected):
                raise ValueError(f"{self.path}: node {node.name!r} ({node.op_type}) gives {got}, but ONNX "
                                 f"shape inference says {_nhwc(expected)} (NHWC)")
        return out

    def fusable(self, node) -> Op | None:
        """The op that produced ``node``'s input when ``node`` is its only reader and may fold into it."""
        src = node.input[0]
        op = self.producer.get(self.env.get(src, ""))
        if op is None or self.consumers.get(src, 0) != 1 or src in self.graph_outputs:
            return None
        return op

    def padding(self, node, x: str, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[str, str]:
        a = self.attrs(node)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            return x, "same"
        if auto == "VALID":
            return x, "valid"
        top, left, bottom, right = (int(p) for p in a.get("pads", [0, 0, 0, 0]))
        _, h, w, _ = self.g.tensors[x].shape
        if tf_same_pads(h, kernel[0], stride[0]) == (top, bottom) and \
                tf_same_pads(w, kernel[1], stride[1]) == (left, right):
            return x, "same"
        if not any((top, left, bottom, right)):
            return x, "valid"
        return self.b.pad(x, ((top, bottom), (left, right)), name=f"{node.name}/pad"), "valid"

    def attrs(self, node) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    # -- ops ------------------------------------------------------------------------------------
    def Constant(self, node):
        value = self.attrs(node).get("value")
        if value is None:
            raise ValueError(f"{self.path}: Constant node {node.name!r} has no tensor 'value'")
        self.consts[node.output[0]] = self.numpy_helper.to_array(value)

    def Identity(self, node):
        if node.input[0] in self.consts:
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self.env[node.output[0]] = self.x(node)

    Dropout = Identity

    def Conv(self, node):
        x, w = self.x(node), self.const(node, 1)
        if w is None or w.ndim != 4:
            raise ValueError(f"{self.path}: Conv {node.name!r} needs constant 4-D weights (a 2-D conv)")
        a = self.attrs(node)
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise ValueError(f"{self.path}: Conv {node.name!r} has dilations {a['dilations']}; only 1 is supported")
        cout, cin_g, kh, kw = w.shape
        cin = self.g.tensors[x].shape[-1]
        group = a.get("group", 1)
        kernel, stride = (int(kh), int(kw)), tuple(int(s) for s in a.get("strides", [1, 1]))
        x, padding = self.padding(node, x, kernel, stride)
        if group == 1:
            y = self.b.conv2d_hw(x, int(cout), kernel, stride, padding=padding, name=node.name)
        elif group == cin == cout and cin_g == 1:
            y = self.b.depthwise_conv2d_hw(x, kernel, stride, padding=padding, name=node.name)
        else:
            raise ValueError(f"{self.path}: Conv {node.name!r} has group={group} with {cin} input and {cout} "
                             "output channels; supported: group 1, or depthwise (group = input = output channels)")
        self.finish(node, y)

    def _fully_connected(self, node, weight_out_in: np.ndarray, bias: bool):
        x = self.x(node)
        if len(self.g.tensors[x].shape) != 2:
            raise ValueError(f"{self.path}: {node.op_type} {node.name!r} reads a "
                             f"{len(self.g.tensors[x].shape)}-D tensor; only N×C inputs are supported")
        y = self.b.fully_connected(x, int(weight_out_in.shape[0]), per_channel=True, bias=bias, name=node.name)
        self.finish(node, y)

    def Gemm(self, node):
        a, w = self.attrs(node), self.const(node, 1)
        if w is None or a.get("transA", 0):
            raise ValueError(f"{self.path}: Gemm {node.name!r} needs constant weights B and transA=0")
        self._fully_connected(node, w if a.get("transB", 0) else w.T, bias=self.const(node, 2) is not None)

    def MatMul(self, node):
        w = self.const(node, 1)
        if w is None or w.ndim != 2:
            raise ValueError(f"{self.path}: MatMul {node.name!r} needs a constant 2-D second input")
        self._fully_connected(node, w.T, bias=False)

    def BatchNormalization(self, node):
        op = self.fusable(node)
        if op is not None and op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
                and len(op.inputs) == 3 and op.attrs.get("activation") is None:
            self.env[node.output[0]] = op.outputs[0]
            return
        x = self.x(node)
        c = self.g.tensors[x].shape[-1]
        scale = self.add_const(f"{node.name}/scale", (c,), channels=c)
        shift = self.add_const(f"{node.name}/shift", (c,), channels=c)
        mul = self.g.add_tensor(Tensor(f"{node.name}/mul", self.g.tensors[x].shape)).name
        self.producer[mul] = self.add_op(node, "MUL", [x, scale], [mul], {"activation": None})
        out = self.g.add_tensor(Tensor(f"{node.name}/out", self.g.tensors[x].shape)).name
        self.finish(node, self.g.add_op(Op(f"{node.name}/add", "ADD", (mul, shift), (out,), {"activation": None})))

    def _activation(self, node, activation: str):
        op = self.fusable(node)
        if op is not None and op.kind in _FUSES_ACTIVATION and op.attrs.get("activation") is None:
            op.attrs["activation"] = activation
            self.env[node.output[0]] = op.outputs[0]
            return
        self.emit(node, _ACTIVATION_OPS[activation], [self.x(node)])

    def Relu(self, node):
        self._activation(node, "relu")

    def Clip(self, node):
        a = self.attrs(node)
        lo, hi = self.const(node, 1), self.const(node, 2)
        lo = float(lo) if lo is not None else float(a.get("min", -np.inf))
        hi = float(hi) if hi is not None else float(a.get("max", np.inf))
        if (lo, hi) not in _CLIP_RANGES:
            raise ValueError(f"{self.path}: Clip {node.name!r} to [{lo}, {hi}]; supported ranges: "
                             f"{', '.join(f'[{l}, {h}]' for l, h in _CLIP_RANGES)}")
        self._activation(node, _CLIP_RANGES[(lo, hi)])

    def _elementwise(self, node, kind: str):
        names = []
        for i, n in enumerate(node.input):
            if n in self.consts:
                v = self.consts[n]
                shape = _nhwc(v.shape) if v.ndim == 4 else v.shape
                names.append(self.add_const(f"{node.name}/const{i}", shape, channels=int(v.size) if v.ndim else 1))
            else:
                names.append(self.x(node, i))
        self.emit(node, kind, names, activation=None)

    def Add(self, node):
        bias = self.const(node, 1)
        op = self.fusable(node)
        if bias is not None and op is not None and op.kind == "FULLY_CONNECTED" and len(op.inputs) == 2 \
                and bias.size == self.g.tensors[op.outputs[0]].shape[-1]:
            cout = int(bias.size)
            b = self.add_const(f"{op.name}/bias", (cout,), "int32", cout)
            self.g.ops[self.g.ops.index(op)] = fused = Op(op.name, op.kind, (*op.inputs, b), op.outputs, op.attrs)
            self.producer[op.outputs[0]] = fused
            self.env[node.output[0]] = op.outputs[0]
            return
        self._elementwise(node, "ADD")

    def HardSigmoid(self, node):
        a = self.attrs(node)
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            raise ValueError(f"{self.path}: HardSigmoid {node.name!r} (alpha={a.get('alpha', 0.2)}, "
                             f"beta={a.get('beta', 0.5)}) is supported only as hard-swish's gate (1/6, 0.5)")
        self.hard_sigmoid[node.output[0]] = node.input[0]

    def Mul(self, node):
        a, b = node.input[0], node.input[1]
        if self.hard_sigmoid.get(b) == a or self.hard_sigmoid.get(a) == b:
            x = self.env[a if self.hard_sigmoid.get(b) == a else b]
            out = self.g.add_tensor(Tensor(f"{node.name}/out", self.g.tensors[x].shape)).name
            self.finish(node, self.add_op(node, "HARD_SWISH", [x], [out], {}))
            return
        self._elementwise(node, "MUL")

    def GlobalAveragePool(self, node):
        self.finish(node, self.b.global_avg_pool(self.x(node), keep_dims=True, name=node.name))

    def ReduceMean(self, node):
        x, a = self.x(node), self.attrs(node)
        rank = len(self.g.tensors[x].shape)
        axes = a.get("axes")
        if axes is None and self.const(node, 1) is not None:
            axes = self.const(node, 1).tolist()
        axes = sorted(int(ax) % rank for ax in (axes if axes is not None else range(rank)))
        keep = bool(a.get("keepdims", 1))
        if rank == 4 and axes == [2, 3]:
            self.finish(node, self.b.global_avg_pool(x, keep_dims=keep, name=node.name))
            return
        mapped = tuple(sorted(_NCHW_TO_NHWC_AXIS[ax] if rank == 4 else ax for ax in axes))
        axes_t = self.add_const(f"{node.name}/axes", (len(mapped),), "int32", 0)
        self.emit(node, "MEAN", [x, axes_t], axes=mapped, keep_dims=keep)

    def _pool(self, node, method):
        a = self.attrs(node)
        kernel = tuple(int(k) for k in a["kernel_shape"])
        stride = tuple(int(s) for s in a.get("strides", [1, 1]))
        x, padding = self.padding(node, self.x(node), kernel, stride)
        self.finish(node, method(x, kernel, stride, padding=padding, name=node.name))

    def AveragePool(self, node):
        self._pool(node, self.b.avg_pool2d)

    def MaxPool(self, node):
        self._pool(node, self.b.max_pool2d)

    def Reshape(self, node):
        self.finish(node, self.b.reshape(self.x(node), self.shape(node.output[0]), name=node.name))

    def Flatten(self, node):
        self.Reshape(node)

    def Pad(self, node):
        a = self.attrs(node)
        pads = a.get("pads")
        if pads is None and self.const(node, 1) is not None:
            pads = self.const(node, 1).tolist()
        mode = a.get("mode", b"constant")
        if (mode.decode() if isinstance(mode, bytes) else mode) != "constant" or pads is None or len(pads) != 8:
            raise ValueError(f"{self.path}: Pad {node.name!r}: only constant padding of a 4-D tensor is supported")
        _, _, top, left, _, _, bottom, right = (int(p) for p in pads)
        if pads[0] or pads[1] or pads[4] or pads[5]:
            raise ValueError(f"{self.path}: Pad {node.name!r} pads the batch or channel axis ({pads})")
        self.finish(node, self.b.pad(self.x(node), ((top, bottom), (left, right)), name=node.name))

    def Softmax(self, node):
        self.finish(node, self.b.softmax(self.x(node), name=node.name))

    def HardSwish(self, node):
        self.emit(node, "HARD_SWISH", [self.x(node)])

    def Sigmoid(self, node):
        self.emit(node, "LOGISTIC", [self.x(node)])

    def Concat(self, node):
        inputs = [self.x(node, i) for i in range(len(node.input))]
        axis = int(self.attrs(node).get("axis", 1))
        rank = len(self.g.tensors[inputs[0]].shape)
        axis %= rank
        self.emit(node, "CONCATENATION", inputs, axis=_NCHW_TO_NHWC_AXIS[axis] if rank == 4 else axis,
                  activation=None)


def read_onnx(path: str | Path) -> Graph:
    """The IR of the ONNX model at ``path`` (see the module doc for the op mapping).

    Raises ``ValueError`` for a file that is not a readable ONNX model (naming the file) and for an op
    outside :data:`SUPPORTED_OPS` (naming its type and node).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a damaged file
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from e
    if not model.graph.node:
        raise ValueError(f"{path}: not a readable ONNX model (its graph has no nodes)")
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
        if node.op_type not in SUPPORTED_OPS or (node.domain not in ("", "ai.onnx")):
            raise ValueError(f"{path}: unsupported ONNX op {node.op_type!r} (node {node.name!r}); supported: "
                             f"{', '.join(SUPPORTED_OPS)}")
    reader = _Reader(model, path)
    for node in model.graph.node:
        getattr(reader, node.op_type)(node)
    outputs = []
    for o in model.graph.output:
        if o.name not in reader.env:
            raise ValueError(f"{path}: graph output {o.name!r} is not produced by any supported op")
        outputs.append(reader.env[o.name])
    graph = reader.b.finish(*outputs)
    graph.ops = [op._replace(name=reader.node_of.get(op.outputs[0], op.name)) for op in graph.ops]
    return graph
