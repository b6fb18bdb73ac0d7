"""A small, typed graph IR that every estimator works on.

The IR mirrors what a TFLite flatbuffer holds after int8 conversion: tensors (activations NHWC, batch
first; constant weights in TFLite's layouts) and ops named by their TFLite builtin names, in execution
order. It is built from an arch spec (each search space's ``to_ir``), an ONNX file or a ``.tflite`` file,
and knows nothing of PyTorch. The estimators read a graph through its compact table
(:func:`estimators.table.table_of`); the search spaces' builder returns a :class:`LazyGraph`, which carries
that table and writes its tensors and ops only when something reads them.

Op kinds and the attributes the estimators read:

``CONV_2D``            kernel (kh, kw), stride (sh, sw), padding "same"|"valid", activation
``DEPTHWISE_CONV_2D``  as CONV_2D plus depth_multiplier
``FULLY_CONNECTED``    activation
``ADD``, ``MUL``       activation (elementwise, broadcasting)
``AVERAGE_POOL_2D``, ``MAX_POOL_2D``  kernel, stride, padding
``MEAN``               axes (global average pooling)
``RESHAPE``            aliases its input (no copy in TFLite Micro)
``PAD``, ``SOFTMAX``, ``HARD_SWISH``, ``LOGISTIC``, ``CONCATENATION``, ``QUANTIZE``, ``DEQUANTIZE``
``TRANSPOSE_CONV``     inputs (output shape, weight, input[, bias]), kernel, stride, padding
``SVDF``               rank, activation (its activation state is a variable tensor)
``UNIDIRECTIONAL_SEQUENCE_LSTM``  cell_bytes: batch × hidden width × the cell state's item size
``STRIDED_SLICE``      (no attributes read)

A graph's ``variables`` are its variable tensors (recurrent state): TFLite Micro keeps them in the
persistent arena, not in the planned head.
"""

from __future__ import annotations

from collections import namedtuple
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

# Bytes per element, as TFLite Micro sizes tensors (``TfLiteTypeSizeOf``). ``int4`` constants are stored
# packed, two per byte, as in the file; an ``int4`` activation takes a byte per element, as TFLM unpacks it.
DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
               "float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
               "bool": 1, "int4": 1, "resource": 4}

CONV_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
WEIGHTED_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


class Tensor(namedtuple("TensorFields", "name shape dtype const quant_channels numel nbytes")):
    """One tensor: activations are NHWC (or N×C for vectors); constants hold weights or biases.

    ``quant_channels`` is the number of quantization scales (per-channel weights: output channels;
    per-tensor: 1; 0 for a float tensor). ``numel`` and ``nbytes`` are computed once, on construction.

    Immutable and compared by value. A named tuple underneath (graphs hold hundreds of them and search
    builds thousands of graphs): :func:`make_tensor` builds one in a single C call.
    """

    __slots__ = ()
    _FIELDS = ("name", "shape", "dtype", "const", "quant_channels")

    def __new__(cls, name: str, shape: tuple[int, ...], dtype: str = "int8", const: bool = False,
                quant_channels: int = 1) -> "Tensor":
        return make_tensor(name, shape, dtype, const, quant_channels)

    def __getnewargs__(self) -> tuple:  # pickle and copy rebuild through __new__
        return self[:5]

    def _replace(self, **changes: Any) -> "Tensor":
        """A copy with ``changes`` to the named fields (``numel`` and ``nbytes`` re-derived)."""
        return make_tensor(**{**dict(zip(self._FIELDS, self)), **changes})

    def __repr__(self) -> str:
        return "Tensor(" + ", ".join(f"{f}={v!r}" for f, v in zip(self._FIELDS, self)) + ")"


_tuple_new = tuple.__new__


def make_tensor(name: str, shape: tuple[int, ...], dtype: str = "int8", const: bool = False,
                quant_channels: int = 1) -> Tensor:
    """A checked :class:`Tensor` (the one place its fields are derived); ``Tensor(...)`` calls it."""
    itemsize = DTYPE_BYTES.get(dtype)
    if itemsize is None:
        raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r}; allowed: {sorted(DTYPE_BYTES)}")
    if type(shape) is not tuple:
        shape = tuple(map(int, shape))
    numel = 1
    for d in shape:  # a loop: cheaper than math.prod + min on 1-4 dimensions
        if d <= 0:
            raise ValueError(f"tensor {name!r}: every dimension must be positive, got {shape}")
        numel *= d
    if type(numel) is not int:  # numpy or float dimensions: Python ints
        shape = tuple(map(int, shape))
        numel = 1
        for d in shape:
            if d <= 0:
                raise ValueError(f"tensor {name!r}: every dimension must be positive, got {shape}")
            numel *= d
    nbytes = (numel + 1) // 2 if dtype == "int4" and const else numel * itemsize
    return _tuple_new(Tensor, (name, shape, dtype, const, quant_channels, numel, nbytes))


def empty_tensor(name: str, shape: tuple[int, ...], dtype: str, const: bool = False, quant_channels: int = 0) -> Tensor:
    """A tensor with a zero dimension, as a ``.tflite`` file may hold one (an LSTM's unused intermediates):
    no elements, no bytes. Builders get only :func:`make_tensor`'s positive dimensions."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r}; allowed: {sorted(DTYPE_BYTES)}")
    shape = tuple(map(int, shape))
    if 0 not in shape or min(shape) < 0:
        raise ValueError(f"tensor {name!r}: an empty tensor has a zero dimension and no negative one, got {shape}")
    return _tuple_new(Tensor, (name, shape, dtype, const, quant_channels, 0, 0))


class Op(namedtuple("OpFields", "name kind inputs outputs attrs")):
    """One operator; ``inputs`` and ``outputs`` are tensor names, ``attrs`` its parameters.

    Immutable (``attrs`` aside); equal and hashed by name, kind, inputs and outputs. A named tuple
    underneath, like :class:`Tensor`: :func:`make_op` builds one in a single C call.
    """

    __slots__ = ()

    def __new__(cls, name: str, kind: str, inputs: tuple[str, ...], outputs: tuple[str, ...],
                attrs: dict[str, Any] | None = None) -> "Op":
        return _tuple_new(cls, (name, kind, inputs, outputs, {} if attrs is None else attrs))

    def __eq__(self, other: object) -> bool:
        return type(other) is Op and self[:4] == other[:4]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self[:4])

    def __getnewargs__(self) -> tuple:  # pickle and copy rebuild through __new__
        return tuple(self)

    def __repr__(self) -> str:
        return f"Op(name={self.name!r}, kind={self.kind!r}, inputs={self.inputs!r}, outputs={self.outputs!r}, attrs={self.attrs!r})"


def make_op(name: str, kind: str, inputs: tuple[str, ...], outputs: tuple[str, ...], attrs: dict[str, Any]) -> Op:
    """``Op(...)`` in one C call (``attrs`` given): the hot path of graph builders."""
    return _tuple_new(Op, (name, kind, inputs, outputs, attrs))


@dataclass
class Graph:
    """Tensors by name, ops in execution order, and the graph's input and output tensor names."""

    name: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)

    def add_tensor(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise ValueError(f"graph {self.name!r}: duplicate tensor {tensor.name!r}")
        self.tensors[tensor.name] = tensor
        return tensor

    def add_op(self, op: Op) -> Op:
        tensors = self.tensors
        for names in (op.inputs, op.outputs):
            for t in names:
                if t not in tensors:
                    raise ValueError(f"op {op.name!r} ({op.kind}) names unknown tensor {t!r}")
        self.ops.append(op)
        return op

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def with_name(self, name: str) -> "Graph":
        """The same graph under another name (sharing tensors and ops)."""
        return dataclasses.replace(self, name=name)

    def activations(self) -> Iterator[Tensor]:
        """Non-constant tensors (graph inputs and op outputs)."""
        return (t for t in self.tensors.values() if not t.const)

    def constants(self) -> Iterator[Tensor]:
        return (t for t in self.tensors.values() if t.const)

    def op_inputs(self, op: Op) -> list[Tensor]:
        """The non-constant inputs of ``op``."""
        return [self.tensors[n] for n in op.inputs if not self.tensors[n].const]

    def op_weight(self, op: Op) -> Tensor | None:
        """The first constant input of ``op`` (its weights), or None."""
        tensors = self.tensors
        for n in op.inputs:
            t = tensors[n]
            if t.const:
                return t
        return None

    def op_weights(self, op: Op) -> list[Tensor]:
        """The constant inputs of ``op`` (weights, biases, shapes)."""
        return [self.tensors[n] for n in op.inputs if self.tensors[n].const]

    def validate(self) -> None:
        """Check that every op reads only tensors already produced (execution order is topological)."""
        tensors, ready = self.tensors, set(self.inputs)  # constants count as ready without being listed
        for op in self.ops:
            for n in op.inputs:
                if n not in ready:
                    t = tensors.get(n)
                    if t is None or not t.const:
                        missing = [m for m in op.inputs if m not in ready and not getattr(tensors.get(m), "const", False)]
                        raise ValueError(f"graph {self.name!r}: op {op.name!r} reads {missing} before they are produced")
            ready.update(op.outputs)
        for n in self.outputs:
            if n not in ready and not getattr(tensors.get(n), "const", False):
                raise ValueError(f"graph {self.name!r}: output {n!r} is never produced")


class LazyTuple(Sequence):
    """A tuple computed by ``make()`` when first read; equal to (and hashed as) that tuple.

    Estimates carry per-op rows (live bytes, layer rows) that search never reads: they are made on demand."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], Iterable]) -> None:
        self._make: Callable[[], Iterable] | None = make
        self._value: tuple = ()

    def _get(self) -> tuple:
        if self._make is not None:
            self._value, self._make = tuple(self._make()), None
        return self._value

    def __len__(self) -> int:
        return len(self._get())

    def __getitem__(self, i):
        return self._get()[i]

    def __iter__(self) -> Iterator:
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyTuple):
            return self._get() == other._get()
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._get() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self):  # pickle and copy: the tuple
        return tuple, (self._get(),)


class LazyGraph(Graph):
    """A :class:`Graph` whose tensors and ops are written on first access, by ``materialize()``.

    :class:`~estimators.builder.GraphBuilder` returns one: its estimator table
    (:class:`~estimators.table.OpTable`) is complete from the start, so estimating it writes no
    :class:`Tensor` or :class:`Op`; reports, exports and readers of ``tensors`` / ``ops`` get them
    written then. Once written they are an ordinary graph's, and the table is re-read from them (an owner
    may edit them)."""

    _LAZY_FIELDS = frozenset({"tensors", "ops", "inputs", "outputs", "variables"})

    def __init__(self, name: str, table: Any, materialize: Callable[[], Graph]) -> None:
        self.name = name
        self._table = table
        self._materialize = materialize

    def __getattr__(self, attr: str) -> Any:  # only called for attributes not yet set
        if attr in LazyGraph._LAZY_FIELDS and "_materialize" in self.__dict__:
            graph = self.__dict__.pop("_materialize")()
            self.tensors, self.ops, self.inputs, self.outputs = graph.tensors, graph.ops, graph.inputs, graph.outputs
            self.variables = graph.variables
            self._table = None
            return self.__dict__[attr]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def with_name(self, name: str) -> Graph:
        materialize = self.__dict__.get("_materialize")
        if materialize is None:
            return Graph(name, self.tensors, self.ops, self.inputs, self.outputs)
        return LazyGraph(name, self._table._replace(name=name), lambda: materialize().with_name(name))

    def __reduce__(self):  # pickle and copy: an ordinary graph
        return Graph, (self.name, self.tensors, self.ops, self.inputs, self.outputs)

    def __eq__(self, other: object) -> bool:  # equal to the ordinary graph with the same contents
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name, self.tensors, self.ops, self.inputs, self.outputs) == \
            (other.name, other.tensors, other.ops, other.inputs, other.outputs)

    __hash__ = None  # type: ignore[assignment]  # mutable, as Graph
