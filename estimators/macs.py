"""Multiply-accumulate and parameter counts per op (conv, depthwise and fully-connected MACs, as MCUNet counts)."""

from __future__ import annotations

from estimators.ir import Graph, Op


def op_macs(graph: Graph, op: Op) -> int:
    """MACs of one op: weights' MACs for conv / depthwise / FC, zero for everything else."""
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    weight = graph.op_weights(op)[0]
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
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    return sum(t.numel for t in graph.op_weights(op))


def total_macs(graph: Graph) -> int:
    return sum(op_macs(graph, op) for op in graph.ops)


def total_params(graph: Graph) -> int:
    return sum(op_params(graph, op) for op in graph.ops)
