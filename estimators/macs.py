"""Multiply-accumulate and parameter counts per op (conv, depthwise and fully-connected MACs, as MCUNet counts)."""

from __future__ import annotations

from estimators.ir import WEIGHTED_KINDS, Graph, Op


RECURRENT_KINDS = frozenset({"SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM"})


def _recurrent_macs(graph: Graph, op: Op) -> int:
    """SVDF / LSTM: every 2-D constant (feature, time, gate and projection weights) is one matrix-vector
    product per batch row and time step."""
    x = graph.tensors[op.inputs[0]]
    rows = x.numel // x.shape[-1] if x.numel else 0
    return rows * sum(t.numel for t in graph.op_weights(op) if len(t.shape) == 2)


def op_macs(graph: Graph, op: Op) -> int:
    """MACs of one op: weights' MACs for conv / depthwise / FC / transpose conv, SVDF and LSTM's matrix
    products, zero for everything else."""
    if op.kind in RECURRENT_KINDS:
        return _recurrent_macs(graph, op)
    if op.kind == "TRANSPOSE_CONV":  # every input pixel scatters through the whole (Cout, kh, kw, Cin) kernel
        _, h, w, _ = graph.tensors[op.inputs[2]].shape
        return h * w * graph.tensors[op.inputs[1]].numel
    if op.kind not in WEIGHTED_KINDS:
        return 0
    weight = graph.op_weight(op)
    if weight is None:
        raise IndexError(f"op {op.name!r} ({op.kind}) has no constant weight input")
    out = graph.tensors[op.outputs[0]]
    if op.kind == "CONV_2D":
        cout, kh, kw, cin = weight.shape
        _, oh, ow, _ = out.shape
        return oh * ow * cout * kh * kw * cin
    if op.kind == "DEPTHWISE_CONV_2D":
        _, kh, kw, c = weight.shape
        _, oh, ow, _ = out.shape
        return oh * ow * c * kh * kw
    cout, cin = weight.shape
    return cout * cin * (out.numel // cout)


def op_params(graph: Graph, op: Op) -> int:
    """Trainable parameters of one op (weights + biases), as PyTorch would count them after BN folding."""
    if op.kind == "TRANSPOSE_CONV":  # its first input is the output shape, not a parameter
        return sum(graph.tensors[n].numel for n in op.inputs[1:] if graph.tensors[n].const)
    if op.kind not in WEIGHTED_KINDS and op.kind not in RECURRENT_KINDS:
        return 0
    tensors = graph.tensors
    params = 0
    for n in op.inputs:
        t = tensors[n]
        if t.const:
            params += t.numel
    return params


def total_macs(graph: Graph) -> int:
    return sum(op_macs(graph, op) for op in graph.ops)


def total_params(graph: Graph) -> int:
    return sum(op_params(graph, op) for op in graph.ops)
