"""The compact form of a graph that the estimators read: per-op facts and the activations' columns.

A graph's figures depend on its ops only through a few position-independent facts each (kind, shapes,
MACs, params, kernel geometry: :class:`OpFacts`), and on its tensors only through the activations'
sizes and lifetimes and three sums (constant bytes, quantization channels, tensor count). An
:class:`OpTable` holds exactly that.

Any graph gives its table (:func:`table_of`, from its tensors and ops). The search spaces'
:class:`~estimators.builder.GraphBuilder` writes the table while it builds, from facts it computes once
per layer configuration and reuses across archs; the graph's :class:`~estimators.ir.Tensor` and
:class:`~estimators.ir.Op` objects are then written only when something reads them
(:class:`~estimators.ir.LazyGraph`). Both routes give equal tables (tests/test_op_table.py).

A table's ops also come in runs (:class:`OpRun`): consecutive ops that a builder reuses as one piece, a
layer or a recorded block, shared by every table that holds them. What the estimators derive from facts
is remembered per run (:func:`per_op`, :func:`per_run`), so a table built from known runs is estimated
in a few steps per run rather than per op.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Callable, Hashable, NamedTuple

from estimators.ir import WEIGHTED_KINDS, Graph, Op
from estimators.macs import op_macs, op_params

_FIELDS = ("kind", "out_shape", "out_numel", "macs", "params", "out_channels", "in_shape", "in_dtype", "aux_numel",
           "kernel", "stride", "padding", "depth_multiplier", "cell_bytes", "activation")


class OpFacts:
    """What the estimators know of one op, independent of where it sits in a graph.

    ``out_*``: its first output; ``in_*``: its first input; ``aux_numel``: elements of its second input (a
    reduction's axes; 0 without one); ``out_channels``: a weighted op's output channels (conv: its
    weight's Cout, depthwise: its channels, fully connected: its output width; 0 for other kinds);
    ``kernel`` / ``stride`` / ``padding`` / ``depth_multiplier``: its window attributes, with TFLite's
    defaults; ``cell_bytes``: an LSTM's batch × hidden width × cell state item size (0 for other kinds);
    ``activation``: its fused activation (None without one).
    A per-channel weight gives ``out_channels`` (fully connected: only when quantized per channel, as TFLM keeps
    per-channel multipliers only then; transpose conv: its weight's Cout). ``memo`` caches what estimators derive from the facts (scratch requests per rule, tail sizes
    per pointer width): facts are shared by every graph that holds the same layer, so each derivation runs
    once per layer configuration.
    """

    __slots__ = (*_FIELDS, "memo")

    def __init__(self, kind: str, out_shape: tuple[int, ...], out_numel: int, macs: int, params: int,
                 out_channels: int, in_shape: tuple[int, ...], in_dtype: str, aux_numel: int,
                 kernel: tuple[int, ...], stride: tuple[int, ...], padding: str, depth_multiplier: int,
                 cell_bytes: int = 0, activation: str | None = None) -> None:
        self.kind, self.out_shape, self.out_numel, self.macs, self.params = kind, out_shape, out_numel, macs, params
        self.out_channels, self.in_shape, self.in_dtype, self.aux_numel = out_channels, in_shape, in_dtype, aux_numel
        self.kernel, self.stride, self.padding, self.depth_multiplier = kernel, stride, padding, depth_multiplier
        self.cell_bytes, self.activation = cell_bytes, activation
        self.memo: dict[Any, Any] = {}

    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is OpFacts and self.key() == other.key())

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return "OpFacts(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS) + ")"


def op_facts(graph: Graph, op: Op) -> OpFacts:
    """The :class:`OpFacts` of ``op`` in ``graph``."""
    tensors, inputs, attrs = graph.tensors, op.inputs, op.attrs
    kind = op.kind
    x = tensors[inputs[0 if kind != "TRANSPOSE_CONV" else 2]] if inputs else None  # TRANSPOSE_CONV: (shape, w, x)
    out = tensors[op.outputs[0]]
    if kind == "TRANSPOSE_CONV":
        channels = tensors[inputs[1]].shape[0]
    elif kind not in WEIGHTED_KINDS:
        channels = 0
    else:
        weight = graph.op_weight(op)
        if weight is None:
            channels = out.shape[-1]
        elif kind == "FULLY_CONNECTED":
            channels = out.shape[-1] if weight.quant_channels > 1 else 0
        else:
            channels = weight.shape[0] if kind == "CONV_2D" else weight.shape[-1]
    return OpFacts(kind, out.shape, out.numel, op_macs(graph, op), op_params(graph, op), channels,
                   x.shape if x is not None else (), x.dtype if x is not None else "",
                   tensors[inputs[1]].numel if len(inputs) > 1 else 0,
                   tuple(attrs.get("kernel", (1, 1))), tuple(attrs.get("stride", (1, 1))),
                   attrs.get("padding", "valid"), attrs.get("depth_multiplier", 1), attrs.get("cell_bytes", 0),
                   attrs.get("activation"))


class OpRun:
    """Consecutive ops of a table, as a builder reuses them: their facts (``ops``), their MACs and params,
    and what estimators derived from them (``memo``, filled by :func:`per_op` and :func:`per_run`)."""

    __slots__ = ("ops", "macs", "params", "memo")

    def __init__(self, ops: tuple[OpFacts, ...]) -> None:
        self.ops = tuple(ops)
        self.macs = sum(op.macs for op in self.ops)
        self.params = sum(op.params for op in self.ops)
        self.memo: dict[Any, Any] = {}

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is OpRun and self.ops == other.ops)

    def __hash__(self) -> int:
        return hash(self.ops)

    def __repr__(self) -> str:
        return f"OpRun({self.ops!r})"


class OpTable(NamedTuple):
    """A graph as the estimators see it.

    ``ops``: one :class:`OpFacts` per op, in execution order. ``act_sizes`` / ``act_firsts`` /
    ``act_lasts``: the bytes of every activation (a non-constant tensor with bytes that is a graph input
    or an op's output), in tensor order, with the steps it is used at first and last (graph inputs at
    step 0, op ``i`` at step ``i + 1``, graph outputs to step ``len(ops)``). ``tensors``, ``const_bytes``
    and ``quant_channels`` count every tensor; ``input_channels`` / ``output_channels`` are the
    quantization channels of the graph's inputs and outputs. ``runs`` split ``ops`` into
    :class:`OpRun`\ s (how is the builder's business: tables that differ only there are equal).
    ``variable_sizes``: the bytes of the graph's variable tensors, in tensor order (TFLM keeps them in the
    persistent tail, not in the planned head).
    """

    name: str
    ops: tuple[OpFacts, ...]
    act_sizes: list[int]
    act_firsts: list[int]
    act_lasts: list[int]
    tensors: int
    const_bytes: int
    quant_channels: int
    input_channels: tuple[int, ...]
    output_channels: tuple[int, ...]
    runs: tuple[OpRun, ...]
    variable_sizes: tuple[int, ...] = ()

    def __eq__(self, other: object) -> bool:  # the runs are how the ops are shared, not what they are
        if not isinstance(other, OpTable):
            return NotImplemented
        return self[:10] == other[:10] and self[11:] == other[11:]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # holds lists

    @classmethod
    def from_graph(cls, graph: Graph) -> "OpTable":
        """The table of any graph, read from its tensors and ops."""
        first, last = _lifetimes(graph)
        names = _activations(graph, first)
        variables = set(graph.variables)
        tensors = graph.tensors
        ops = tuple(op_facts(graph, op) for op in graph.ops)
        return cls(graph.name, ops,
                   [tensors[n].nbytes for n in names], [first[n] for n in names], [last[n] for n in names],
                   len(tensors), sum(t.nbytes for t in tensors.values() if t.const),
                   sum(t.quant_channels for t in tensors.values()),
                   tuple(tensors[n].quant_channels for n in graph.inputs),
                   tuple(tensors[n].quant_channels for n in graph.outputs), (OpRun(ops),),
                   tuple(tensors[n].nbytes for n in tensors if n in variables and tensors[n].nbytes))


def _lifetimes(graph: Graph) -> tuple[dict[str, int], dict[str, int]]:
    """The first and last step of every tensor a graph input, op or graph output names (constants too;
    a tensor only read has a last step but no first)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for n in graph.inputs:
        first.setdefault(n, 0)
        last[n] = 0
    for step, op in enumerate(graph.ops, 1):
        for n in op.outputs:
            if n not in first:
                first[n] = step
            last[n] = step
        for n in op.inputs:
            last[n] = step
    end = len(graph.ops)
    for n in graph.outputs:
        first.setdefault(n, end)
        last[n] = end
    return first, last


def _activations(graph: Graph, first: dict[str, int]) -> list[str]:
    variables = set(graph.variables)
    return [n for n, t in graph.tensors.items() if not t.const and t.nbytes and n in first and n not in variables]


def activation_names(graph: Graph) -> list[str]:
    """The names of the activations of ``graph``'s table, in its order (for reports)."""
    return _activations(graph, _lifetimes(graph)[0])


def op_values(ops: tuple[OpFacts, ...], key: Hashable, derive: Callable[[OpFacts], Any]) -> tuple:
    """``derive(op)`` for each of ``ops``, remembered in each op's ``memo`` (facts recur across runs)."""
    out = []
    for op in ops:
        memo = op.memo
        if key not in memo:
            memo[key] = derive(op)
        out.append(memo[key])
    return tuple(out)


def per_run(table: OpTable, key: Hashable, derive: Callable[[tuple[OpFacts, ...]], Any]) -> list:
    """``derive(run.ops)`` for each run of ``table``, remembered in the run's ``memo`` under ``key`` (``key``
    must name ``derive`` and everything else it depends on; a string or a function hashes fastest); for
    figures that are sums or firsts over ops, taken again over the runs."""
    runs = table.runs
    try:
        return [run.memo[key] for run in runs]
    except KeyError:
        for run in runs:
            if key not in run.memo:
                run.memo[key] = derive(run.ops)
        return [run.memo[key] for run in runs]


def per_op(table: OpTable, key: Hashable, derive: Callable[[OpFacts], Any]) -> list:
    """``derive(op)`` for each op of ``table``, remembered per run (:func:`per_run`) and per op
    (:func:`op_values`) under ``key``."""
    return list(chain.from_iterable(per_run(table, key, lambda ops: op_values(ops, key, derive))))


def table_of(graph: Graph) -> OpTable:
    """``graph``'s table: the one its builder wrote, else read from its tensors and ops."""
    table = graph.__dict__.get("_table")
    return table if table is not None else OpTable.from_graph(graph)
