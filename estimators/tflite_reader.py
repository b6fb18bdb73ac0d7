"""Read a ``.tflite`` flatbuffer into the IR (first subgraph), with the schema module ``tflite_micro`` ships.

Tensors keep the file's order (TFLite Micro's planner breaks size ties by tensor index), constants are
the tensors whose buffer holds data, and op attributes are those :mod:`estimators.ir` documents.
"""

from __future__ import annotations

import struct
from pathlib import Path

from estimators.ir import DTYPE_BYTES, Graph, Op, Tensor, empty_tensor

# TFLite's TensorType → the IR's dtype, for every type TFLite Micro sizes (``TfLiteTypeSizeOf``).
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 8: "complex64",
           9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 15: "uint32", 16: "uint16",
           17: "int4", 18: "bfloat16"}
# The types TFLite Micro cannot hold in a tensor (its TfLiteTypeSizeOf fails on them).
_REFUSED_DTYPES = {5: "STRING", 14: "VARIANT", 19: "INT2", 20: "UINT4", 21: "FLOAT8_E4M3FN", 22: "FLOAT8_E5M2"}
# UNIDIRECTIONAL_SEQUENCE_LSTM's input positions (TFLite's lstm_shared.h): input, output (hidden) state, cell state.
_LSTM_INPUT, _LSTM_HIDDEN, _LSTM_CELL = 0, 18, 19
_PADDING = {0: "same", 1: "valid"}
_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return fb


def _names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _options(fb, op, cls_name: str):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opts = getattr(fb, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _attrs(fb, kind: str, op, weight_shape) -> dict:
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = _options(fb, op, "Conv2DOptions" if kind == "CONV_2D" else "DepthwiseConv2DOptions")
        attrs = dict(kernel=(int(weight_shape[1]), int(weight_shape[2])), stride=(o.StrideH(), o.StrideW()),
                     padding=_PADDING[o.Padding()], activation=_ACTIVATIONS.get(o.FusedActivationFunction()),
                     dilation=(o.DilationHFactor(), o.DilationWFactor()))
        if kind == "DEPTHWISE_CONV_2D":
            attrs["depth_multiplier"] = o.DepthMultiplier()
        return attrs
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        o = _options(fb, op, "Pool2DOptions")
        return dict(kernel=(o.FilterHeight(), o.FilterWidth()), stride=(o.StrideH(), o.StrideW()),
                    padding=_PADDING[o.Padding()], activation=_ACTIVATIONS.get(o.FusedActivationFunction()))
    if kind == "TRANSPOSE_CONV":
        o = _options(fb, op, "TransposeConvOptions")
        return dict(kernel=(int(weight_shape[1]), int(weight_shape[2])), stride=(o.StrideH(), o.StrideW()),
                    padding=_PADDING[o.Padding()], activation=_ACTIVATIONS.get(o.FusedActivationFunction()))
    option_class = {"FULLY_CONNECTED": "FullyConnectedOptions", "ADD": "AddOptions", "MUL": "MulOptions",
                    "CONCATENATION": "ConcatenationOptions"}.get(kind)
    if option_class:
        o = _options(fb, op, option_class)
        attrs = {"activation": _ACTIVATIONS.get(o.FusedActivationFunction()) if o else None}
        if kind == "CONCATENATION" and o:
            attrs["axis"] = o.Axis()
        return attrs
    if kind == "MEAN":
        o = _options(fb, op, "ReducerOptions")
        return {"keep_dims": bool(o.KeepDims()) if o else False}
    return {}


def _lstm_cell_bytes(fb, op, sub) -> int:
    """Batch × hidden state width × the cell state's item size: each of the four scratch rows TFLM's
    UNIDIRECTIONAL_SEQUENCE_LSTM requests (``UnidirectionalSequenceLstmPrepare``)."""
    o = _options(fb, op, "UnidirectionalSequenceLSTMOptions")
    index = op.InputsAsNumpy()
    x, hidden, cell = (sub.Tensors(int(index[k])) for k in (_LSTM_INPUT, _LSTM_HIDDEN, _LSTM_CELL))
    batch = int(x.ShapeAsNumpy()[1 if o is not None and o.TimeMajor() else 0])
    return batch * int(hidden.ShapeAsNumpy()[-1]) * DTYPE_BYTES[_DTYPES[cell.Type()]]


def _custom_code(code) -> str:
    return (code.CustomCode() or b"").decode(errors="replace") or "?"


def read_tflite(path: str | Path) -> Graph:
    """The IR of the first subgraph of the ``.tflite`` file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"TFLite model {str(path)!r} does not exist or is not a file")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{str(path)!r} is not a TFLite flatbuffer (no b'TFL3' identifier)")
    fb = _schema()
    try:
        model = fb.Model.GetRootAs(data, 0)
        sub = model.Subgraphs(0)
        op_names = _names(fb.BuiltinOperator)
        graph = Graph(name=path.stem)
        names: list[str] = []
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            dtype = _DTYPES.get(t.Type())
            if dtype is None:
                what = _REFUSED_DTYPES.get(t.Type(), f"number {t.Type()}")
                raise ValueError(f"{str(path)!r}: tensor {i} has TFLite type {what}, which TFLite Micro cannot hold; "
                                 f"supported: {', '.join(sorted(_DTYPES.values()))}")
            name = (t.Name() or b"").decode() or f"tensor{i}"
            if name in graph.tensors:
                name = f"{name}#{i}"
            buf = model.Buffers(t.Buffer())
            # A variable tensor's buffer only initialises it: TFLM gives it its own arena bytes.
            const = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1) and not t.IsVariable()
            q = t.Quantization()
            channels = q.ScaleLength() if q is not None else 0
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            graph.add_tensor((empty_tensor if 0 in shape else Tensor)(name, shape, dtype, const, channels))
            names.append(name)
            if t.IsVariable():
                graph.variables.append(name)
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = op_names.get(number) or f"UNKNOWN_BUILTIN_{number}"  # a newer schema's op: refused by name
            inputs = tuple(names[j] for j in op.InputsAsNumpy() if j >= 0) if op.InputsLength() else ()
            outputs = tuple(names[j] for j in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            weight_shape = graph.tensors[inputs[1]].shape if len(inputs) > 1 else ()
            attrs = _attrs(fb, kind, op, weight_shape)
            if kind == "CUSTOM":
                attrs["custom_code"] = _custom_code(code)
            elif kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                attrs["cell_bytes"] = _lstm_cell_bytes(fb, op, sub)
            graph.add_op(Op(f"{kind.lower()}_{i}", kind, inputs, outputs, attrs))
        graph.inputs.extend(names[j] for j in sub.InputsAsNumpy())
        graph.outputs.extend(names[j] for j in sub.OutputsAsNumpy())
    except (IndexError, AttributeError, KeyError, TypeError, struct.error) as e:  # how flatbuffers reports corruption
        raise ValueError(f"{str(path)!r}: cannot parse the TFLite flatbuffer ({type(e).__name__}: {e})") from e
    return graph
