"""Describing an int8 network in the IR layer by layer: :class:`GraphWriter` and :class:`GraphBuilder`.

Each layer method appends the op TFLite would run for that layer, with weight and bias tensors in
TFLite's layouts (conv: [Cout, Kh, Kw, Cin]; depthwise: [1, Kh, Kw, C]; fully connected: [Cout, Cin];
int32 bias), and returns a handle of its output activation.

:class:`GraphWriter` writes the :class:`~estimators.ir.Tensor` and :class:`~estimators.ir.Op` objects
as it goes (handles are tensor names; the ONNX reader uses it). :class:`GraphBuilder`, which the search
spaces use, has the same layer methods but writes only the estimators' table
(:class:`~estimators.table.OpTable`), from facts it computes once per layer configuration by running that
one layer on a :class:`GraphWriter`; the graph's tensors and ops are written by replaying its layers on a
:class:`GraphWriter` when something reads them. Search estimates thousands of archs that share most of
their layer configurations and reads few graphs.
"""

from __future__ import annotations

import functools
import math

from typing import Any, Callable, Hashable

from estimators.ir import Graph, LazyGraph, Tensor, make_op, make_tensor
from estimators.table import OpFacts, OpRun, OpTable, op_facts

_OP_BASE: dict[str, str] = {}  # op kind → its name base ('CONV_2D' → 'conv_2d')
_tuple_new = tuple.__new__


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    if padding == "valid":
        return (size - kernel) // stride + 1
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")


# (kind, input shape, cout, kernel, stride, padding, dtype) → the fields after the name of a conv layer's
# weight, bias and output tensors; bounded, cleared when full.
_CONV_FIELDS: dict[tuple, tuple[tuple, tuple, tuple]] = {}
_CONV_FIELDS_MAX = 1 << 16


def _conv_fields(name: str, kind: str, in_shape: tuple[int, ...], cout: int | None, kernel: tuple[int, int],
                 stride: tuple[int, int], padding: str, dtype: str) -> tuple[tuple, tuple, tuple]:
    _, h, w, cin = in_shape
    (kh, kw), (sh, sw) = kernel, stride
    c = cin if cout is None else cout
    weight_shape = (1, kh, kw, c) if cout is None else (cout, kh, kw, cin)
    out_shape = (1, conv_output_size(h, kh, sh, padding), conv_output_size(w, kw, sw, padding), c)
    return (make_tensor(f"{name}/weight", weight_shape, "int8", True, c)[1:],
            make_tensor(f"{name}/bias", (c,), "int32", True, c)[1:],
            make_tensor(f"{name}/out", out_shape, dtype)[1:])


class GraphWriter:
    """Writes a :class:`Graph` for a batch-1 int8 model with an NHWC (or N×L×C) input; handles are tensor names."""

    def __init__(self, name: str, input_shape: tuple[int, ...], dtype: str = "int8"):
        self.graph = Graph(name=name)
        self._count: dict[str, int] = {}
        x = self._tensor("input", (1, *input_shape), dtype=dtype)
        self.graph.inputs.append(x)
        self.dtype = dtype

    # -- naming and adding ------------------------------------------------------------------
    def _tensor(self, base: str, shape: tuple[int, ...], dtype: str = "int8", const: bool = False,
                quant_channels: int = 1) -> str:
        return self._put(base, make_tensor(base, shape, dtype, const, quant_channels)[1:])

    def _put(self, base: str, fields: tuple) -> str:
        """Add the tensor with ``fields`` (a :class:`Tensor` after its name) under a unique name from ``base``."""
        # Hot path (hundreds of calls per graph): unique naming and ``Graph.add_tensor`` inlined.
        count = self._count
        n = count.get(base, 0)
        count[base] = n + 1
        name = f"{base}_{n}" if n else base
        tensors = self.graph.tensors
        tensor = _tuple_new(Tensor, (name,) + fields)
        if name in tensors:
            self.graph.add_tensor(tensor)  # raises the duplicate-name error
        tensors[name] = tensor
        return name

    def _op(self, kind: str, inputs: tuple[str, ...], outputs: tuple[str, ...], **attrs) -> None:
        # Hot path: unique naming and ``Graph.add_op`` inlined.
        base = _OP_BASE.get(kind) or _OP_BASE.setdefault(kind, kind.lower())
        count = self._count
        n = count.get(base, 0)
        count[base] = n + 1
        op = make_op(f"{base}_{n}" if n else base, kind, inputs, outputs, attrs)
        tensors = self.graph.tensors
        for t in inputs:
            if t not in tensors:
                self.graph.add_op(op)  # raises the unknown-tensor error
        self.graph.ops.append(op)

    def shape(self, x: str) -> tuple[int, ...]:
        return self.graph.tensors[x].shape

    # -- layers -------------------------------------------------------------------------------
    def conv2d(self, x: str, cout: int, kernel: int, stride: int = 1, activation: str | None = None,
               padding: str = "same", name: str = "conv") -> str:
        return self._conv("CONV_2D", x, cout, (kernel, kernel), (stride, stride), activation, padding, name)

    def depthwise_conv2d(self, x: str, kernel: int, stride: int = 1, activation: str | None = None,
                         padding: str = "same", name: str = "dwconv") -> str:
        return self._conv("DEPTHWISE_CONV_2D", x, None, (kernel, kernel), (stride, stride), activation, padding, name)

    def _conv(self, kind: str, x: str, cout: int | None, kernel: tuple[int, int], stride: tuple[int, int],
              activation: str | None, padding: str, name: str) -> str:
        """CONV_2D (``cout`` channels) or DEPTHWISE_CONV_2D (``cout`` None: as many channels as ``x``).

        The weight / bias / output fields depend only on the layer's configuration, which the archs of
        a space share: they are computed once per configuration (:data:`_CONV_FIELDS`)."""
        key = (kind, self.graph.tensors[x].shape, cout, kernel, stride, padding, self.dtype)
        fields = _CONV_FIELDS.get(key)
        if fields is None:
            fields = _conv_fields(name, *key)
            if len(_CONV_FIELDS) >= _CONV_FIELDS_MAX:
                _CONV_FIELDS.clear()
            _CONV_FIELDS[key] = fields
        weight = self._put(f"{name}/weight", fields[0])
        bias = self._put(f"{name}/bias", fields[1])
        y = self._put(f"{name}/out", fields[2])
        if cout is None:
            self._op(kind, (x, weight, bias), (y,), kernel=kernel, stride=stride, padding=padding,
                     activation=activation, depth_multiplier=1)
        else:
            self._op(kind, (x, weight, bias), (y,), kernel=kernel, stride=stride, padding=padding,
                     activation=activation)
        return y

    def add(self, a: str, b: str, activation: str | None = None, name: str = "add") -> str:
        y = self._tensor(f"{name}/out", self.shape(a), self.dtype)
        self._op("ADD", (a, b), (y,), activation=activation)
        return y

    def global_avg_pool(self, x: str, keep_dims: bool = True, name: str = "pool") -> str:
        """Global average pooling as TFLite's MEAN over H and W (N×1×1×C, or N×C without ``keep_dims``)."""
        n, _, _, c = self.shape(x)
        axes = self._tensor(f"{name}/axes", (2,), "int32", True, 0)
        y = self._tensor(f"{name}/out", (n, 1, 1, c) if keep_dims else (n, c), self.dtype)
        self._op("MEAN", (x, axes), (y,), axes=(1, 2), keep_dims=keep_dims)
        return y

    def pad(self, x: str, pads: tuple[tuple[int, int], tuple[int, int]], name: str = "pad") -> str:
        """Zero PAD of H and W by ((top, bottom), (left, right)), as converters emit before strided convs."""
        n, h, w, c = self.shape(x)
        (top, bottom), (left, right) = pads
        paddings = self._tensor(f"{name}/paddings", (4, 2), "int32", True, 0)
        y = self._tensor(f"{name}/out", (n, h + top + bottom, w + left + right, c), self.dtype)
        self._op("PAD", (x, paddings), (y,), pads=((0, 0), (top, bottom), (left, right), (0, 0)))
        return y

    def reshape(self, x: str, shape: tuple[int, ...], name: str = "reshape") -> str:
        new_shape = self._tensor(f"{name}/shape", (len(shape),), dtype="int32", const=True, quant_channels=0)
        y = self._tensor(f"{name}/out", shape, self.dtype)
        self._op("RESHAPE", (x, new_shape), (y,))
        return y

    def flatten(self, x: str, name: str = "flatten") -> str:
        shape = self.shape(x)
        return self.reshape(x, (shape[0], math.prod(shape[1:])), name=name)

    def fully_connected(self, x: str, cout: int, activation: str | None = None, per_channel: bool = False,
                        bias: bool = True, name: str = "fc") -> str:
        """FULLY_CONNECTED; ``per_channel`` quantizes the weights per output channel (onnx2tf does)."""
        n, cin = self.shape(x)
        channels = cout if per_channel else 1
        weight = self._tensor(f"{name}/weight", (cout, cin), "int8", True, channels)
        inputs = [x, weight]
        if bias:
            inputs.append(self._tensor(f"{name}/bias", (cout,), "int32", True, channels))
        y = self._tensor(f"{name}/out", (n, cout), self.dtype)
        self._op("FULLY_CONNECTED", tuple(inputs), (y,), activation=activation)
        return y

    def finish(self, *outputs: str) -> Graph:
        """The graph, with ``outputs`` as its outputs. Every op was appended after the tensors it reads
        and with its output, so the graph is in execution order by construction (what
        :meth:`Graph.validate` checks): only the outputs need checking."""
        tensors = self.graph.tensors
        for n in outputs:
            if n not in tensors:
                raise ValueError(f"graph {self.graph.name!r}: output {n!r} is never produced")
        self.graph.outputs.extend(outputs)
        return self.graph

    # -- rectangular kernels, pooling, softmax (appended) --------------------------------------
    def _window_output(self, x: str, kernel: tuple[int, int], stride: tuple[int, int],
                       padding: str) -> tuple[int, int]:
        _, h, w, _ = self.shape(x)
        return (conv_output_size(h, kernel[0], stride[0], padding),
                conv_output_size(w, kernel[1], stride[1], padding))

    def conv2d_hw(self, x: str, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
                  activation: str | None = None, padding: str = "same", name: str = "conv") -> str:
        """CONV_2D with a rectangular ``kernel`` (kh, kw) and ``stride`` (sh, sw); 1-D convs use kh or kw = 1."""
        return self._conv("CONV_2D", x, cout, tuple(kernel), tuple(stride), activation, padding, name)

    def depthwise_conv2d_hw(self, x: str, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
                            activation: str | None = None, padding: str = "same", name: str = "dwconv") -> str:
        """DEPTHWISE_CONV_2D with a rectangular ``kernel`` and ``stride``."""
        return self._conv("DEPTHWISE_CONV_2D", x, None, tuple(kernel), tuple(stride), activation, padding, name)

    def _pool(self, kind: str, x: str, kernel: tuple[int, int], stride: tuple[int, int] | None,
              padding: str, name: str) -> str:
        stride = tuple(stride or kernel)
        oh, ow = self._window_output(x, kernel, stride, padding)
        y = self._tensor(f"{name}/out", (1, oh, ow, self.shape(x)[3]), self.dtype)
        self._op(kind, (x,), (y,), kernel=tuple(kernel), stride=stride, padding=padding)
        return y

    def avg_pool2d(self, x: str, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
                   padding: str = "valid", name: str = "avgpool") -> str:
        """AVERAGE_POOL_2D (stride defaults to the kernel, as in Keras)."""
        return self._pool("AVERAGE_POOL_2D", x, kernel, stride, padding, name)

    def max_pool2d(self, x: str, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
                   padding: str = "valid", name: str = "maxpool") -> str:
        """MAX_POOL_2D (stride defaults to the kernel, as in Keras)."""
        return self._pool("MAX_POOL_2D", x, kernel, stride, padding, name)

    def softmax(self, x: str, name: str = "softmax") -> str:
        y = self._tensor(f"{name}/out", self.shape(x), self.dtype)
        self._op("SOFTMAX", (x,), (y,), beta=1.0)
        return y

    # -- elementwise multiply and hard-swish (appended) ------------------------------------------
    def mul(self, a: str, b: str | float, activation: str | None = None, name: str = "mul") -> str:
        """MUL of ``a`` by activation ``b`` (broadcast, e.g. an N×1×1×C gate) or by a scalar int8 constant."""
        if not isinstance(b, str):
            b = self._tensor(f"{name}/scalar", (), const=True)
        sa, sb = self.shape(a), self.shape(b)
        shape = tuple(max(x, y) for x, y in zip(sa, sb)) if len(sa) == len(sb) else sa
        y = self._tensor(f"{name}/out", shape, self.dtype)
        self._op("MUL", (a, b), (y,), activation=activation)
        return y

    def hard_swish(self, x: str, name: str = "hswish") -> str:
        y = self._tensor(f"{name}/out", self.shape(x), self.dtype)
        self._op("HARD_SWISH", (x,), (y,))
        return y


# dtype → (layer method, its arguments but the name, the input shapes) → (facts, output shape, output bytes,
# tensors it adds, their constant bytes, their quantization channels, the one-op run); bounded, cleared when full.
_LayerEntry = tuple[OpFacts, tuple[int, ...], int, int, int, int, OpRun]
_LAYERS: dict[str, dict[tuple, _LayerEntry]] = {}  # per dtype
# dtype → (segment key, input shape) → _Segment (see GraphBuilder._record); bounded, cleared when full.
_Segment = tuple
_SEGMENTS: dict[str, dict[tuple, _Segment]] = {}
_CACHE_MAX = 1 << 15
_SEGMENT = "segment"  # the log's mark of a replayed segment


def _layer_entry(method: str, dtype: str, args: tuple, shapes: tuple[tuple[int, ...], ...], name: str) -> _LayerEntry:
    """Run one layer on a :class:`GraphWriter` whose inputs have ``shapes`` and read what the table needs."""
    writer = GraphWriter("layer", shapes[0][1:], dtype)
    handles = [writer.graph.inputs[0]] + [writer._tensor(f"input{i}", s, dtype) for i, s in enumerate(shapes[1:], 1)]
    before = len(writer.graph.tensors)
    y = getattr(writer, method)(*handles, *args, name=name)
    graph = writer.graph
    if len(graph.ops) != 1 or graph.ops[0].outputs != (y,):
        raise AssertionError(f"GraphWriter.{method} must append exactly one op with one output")
    added = list(graph.tensors.values())[before:]
    out = graph.tensors[y]
    facts = op_facts(graph, graph.ops[0])
    return (facts, out.shape, out.nbytes, len(added), sum(t.nbytes for t in added if t.const),
            sum(t.quant_channels for t in added), OpRun((facts,)))


def clear_caches() -> None:
    """Forget every layer and segment configuration seen (the next graphs are built from cold caches)."""
    _CONV_FIELDS.clear()
    _LAYERS.clear()
    _SEGMENTS.clear()


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@functools.lru_cache(maxsize=4096)
def same_is_symmetric(h: int, w: int, kernel: int, stride: int) -> bool:
    """Whether TensorFlow's 'same' padding of an h×w input is PyTorch's symmetric kernel//2 padding."""
    p = kernel // 2
    return tf_same_pads(h, kernel, stride) == (p, p) and tf_same_pads(w, kernel, stride) == (p, p)


def symmetric_padded(g, layer, x, kernel: int, stride: int, *args, name: str, **kwargs):
    """A k×k layer with PyTorch's symmetric k//2 padding as a TFLite graph has it: a 'same' layer where
    TensorFlow's 'same' padding is that symmetric padding (always at stride 1), else an explicit PAD
    followed by a 'valid' layer (onnx2tf writes this; so did MCUNet's own TF export, ``tf.pad`` + VALID)."""
    _, h, w, _ = g.shape(x)
    if same_is_symmetric(h, w, kernel, stride):
        return layer(x, *args, kernel=kernel, stride=stride, padding="same", name=name, **kwargs)
    p = kernel // 2
    x = g.pad(x, ((p, p), (p, p)), name=f"{name}/pad")
    return layer(x, *args, kernel=kernel, stride=stride, padding="valid", name=name, **kwargs)


def _bounded_put(cache: dict, key: Hashable, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


class GraphBuilder:
    """Describes a batch-1 int8 model with an NHWC (or N×L×C) input; :meth:`finish` returns its graph.

    Handles are ints (the input is :attr:`input`). The layer methods and their arguments are
    :class:`GraphWriter`'s; each records the layer, looks up its facts (computed on first sight of the
    configuration) and extends the table. The returned :class:`~estimators.ir.LazyGraph` writes its
    tensors and ops by replaying the recorded layers on a :class:`GraphWriter`."""

    input = 0

    def __init__(self, name: str, input_shape: tuple[int, ...], dtype: str = "int8"):
        self.name, self.dtype = name, dtype
        self._input_shape = tuple(input_shape)
        self._input = make_tensor("input", (1, *self._input_shape), dtype)
        self._layers = _LAYERS.setdefault(dtype, {})
        self._segments = _SEGMENTS.setdefault(dtype, {})
        # Handle h is the activation written at step h: the input (0), then layer h's output.
        self._shapes: list[tuple[int, ...]] = [self._input.shape]
        self._lasts = [0]  # the last step that reads each activation
        self._bytes = [self._input.nbytes]  # each activation's bytes
        self._facts: list[OpFacts] = []  # layer h's facts at h - 1
        self._runs: list[OpRun] = []  # the same ops: one run per layer, or a replayed segment's
        self._log: list[tuple[str, tuple[int, ...], tuple, str]] = []
        # Running sums over the layers: tensors added, their constant bytes, their quantization channels.
        self._tensors, self._const_bytes, self._quant_channels = 1, 0, self._input.quant_channels

    def shape(self, x: int) -> tuple[int, ...]:
        return self._shapes[x]

    def _layer(self, method: str, inputs: tuple[int, ...], args: tuple, name: str) -> int:
        shapes = self._shapes
        key = (method, args, shapes[inputs[0]]) if len(inputs) == 1 else (method, args, *[shapes[h] for h in inputs])
        entry = self._layers.get(key)
        if entry is None:
            entry = _layer_entry(method, self.dtype, args, tuple(shapes[h] for h in inputs), name)
            _bounded_put(self._layers, key, entry)
        facts, shape, nbytes, tensors, const_bytes, quant_channels, run = entry
        self._facts.append(facts)
        self._runs.append(run)
        step = len(self._facts)
        lasts = self._lasts
        for h in inputs:
            lasts[h] = step
        lasts.append(step)
        shapes.append(shape)
        self._bytes.append(nbytes)
        self._tensors += tensors
        self._const_bytes += const_bytes
        self._quant_channels += quant_channels
        self._log.append((method, inputs, args, name))
        return step

    def segment(self, key: Hashable, x: int, name: str, build: Callable[..., int], *args: Any) -> int:
        """``build(self, x, *args, name=name)``: a run of layers reading only ``x``, with layer names under ``name``.

        Its layers are recorded the first time ``key`` (which must hold everything ``build`` reads but ``x``
        and ``name``; a flat tuple hashes and compares fastest) meets ``x``'s shape, and replayed from then
        on: a search space's blocks recur across archs at other positions, and a replay appends them in a
        few list operations."""
        shapes = self._shapes
        ck = (key, shapes[x])
        seg = self._segments.get(ck)
        if seg is None:
            start, log_start, runs_start = len(self._facts), len(self._log), len(self._runs)
            sums = self._tensors, self._const_bytes, self._quant_channels
            y = build(self, x, *args, name=name)
            seg = self._record(start, log_start, sums, x, y, name)
            if seg is not None:
                _bounded_put(self._segments, ck, seg)
                self._runs[runs_start:] = [seg[-1]]  # the same ops, as the run the replays will share
            return y
        facts, nbytes, seg_shapes, seg_lasts, x_last, y_rel, log, (tensors, const_bytes, quant_channels), run = seg
        start = len(self._facts)
        self._facts += facts
        self._bytes += nbytes
        shapes += seg_shapes
        self._lasts[x] = start + x_last
        self._lasts += map(start.__add__, seg_lasts)
        self._runs.append(run)
        self._tensors += tensors
        self._const_bytes += const_bytes
        self._quant_channels += quant_channels
        self._log.append((_SEGMENT, (x,), (start, log), name))
        return start + y_rel

    def _record(self, start: int, log_start: int, sums: tuple[int, int, int], x: int, y: int, name: str
                ) -> _Segment | None:
        """The replayable record of the layers appended since step ``start`` (when the running sums were
        ``sums``): their facts, output bytes, shapes and last steps (relative to ``start``), ``x``'s last step
        and the output handle (relative), the layer log (handles relative: 0 is ``x``; names relative to
        ``name``), the tensors / constant bytes / quantization channels they add, and their
        :class:`~estimators.table.OpRun`. None when they hold a replayed segment, read another handle than
        ``x`` or none, or name a layer outside ``name``: then they are not reused."""
        log = self._log[log_start:]
        n = len(self._facts) - start
        if not n or len(log) != n or self._lasts[x] <= start or y <= start:
            return None
        local: list[tuple[str, tuple[int, ...], tuple, str]] = []
        for method, inputs, args, layer_name in log:
            if not layer_name.startswith(name) or any(h <= start and h != x for h in inputs):
                return None
            local.append((method, tuple(0 if h <= start else h - start for h in inputs), args, layer_name[len(name):]))
        facts = tuple(self._facts[start:])
        added = (self._tensors - sums[0], self._const_bytes - sums[1], self._quant_channels - sums[2])
        return (facts, tuple(self._bytes[start + 1:]), tuple(self._shapes[start + 1:]),
                tuple(last - start for last in self._lasts[start + 1:]), self._lasts[x] - start, y - start, tuple(local),
                added, OpRun(facts))

    # -- layers (GraphWriter's signatures) ----------------------------------------------------------------
    def conv2d(self, x: int, cout: int, kernel: int, stride: int = 1, activation: str | None = None,
               padding: str = "same", name: str = "conv") -> int:
        return self._layer("conv2d", (x,), (cout, kernel, stride, activation, padding), name)

    def depthwise_conv2d(self, x: int, kernel: int, stride: int = 1, activation: str | None = None,
                         padding: str = "same", name: str = "dwconv") -> int:
        return self._layer("depthwise_conv2d", (x,), (kernel, stride, activation, padding), name)

    def conv2d_hw(self, x: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
                  activation: str | None = None, padding: str = "same", name: str = "conv") -> int:
        return self._layer("conv2d_hw", (x,), (cout, tuple(kernel), tuple(stride), activation, padding), name)

    def depthwise_conv2d_hw(self, x: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
                            activation: str | None = None, padding: str = "same", name: str = "dwconv") -> int:
        return self._layer("depthwise_conv2d_hw", (x,), (tuple(kernel), tuple(stride), activation, padding), name)

    def add(self, a: int, b: int, activation: str | None = None, name: str = "add") -> int:
        return self._layer("add", (a, b), (activation,), name)

    def mul(self, a: int, b: int | float, activation: str | None = None, name: str = "mul") -> int:
        """MUL of ``a`` by activation handle ``b`` (an int) or by a float scalar."""
        if type(b) is int:
            return self._layer("mul", (a, b), (activation,), name)
        return self._layer("mul", (a,), (float(b), activation), name)

    def global_avg_pool(self, x: int, keep_dims: bool = True, name: str = "pool") -> int:
        return self._layer("global_avg_pool", (x,), (bool(keep_dims),), name)

    def pad(self, x: int, pads: tuple[tuple[int, int], tuple[int, int]], name: str = "pad") -> int:
        return self._layer("pad", (x,), (tuple(map(tuple, pads)),), name)

    def reshape(self, x: int, shape: tuple[int, ...], name: str = "reshape") -> int:
        return self._layer("reshape", (x,), (tuple(shape),), name)

    def flatten(self, x: int, name: str = "flatten") -> int:
        return self._layer("flatten", (x,), (), name)

    def fully_connected(self, x: int, cout: int, activation: str | None = None, per_channel: bool = False,
                        bias: bool = True, name: str = "fc") -> int:
        return self._layer("fully_connected", (x,), (cout, activation, bool(per_channel), bool(bias)), name)

    def avg_pool2d(self, x: int, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
                   padding: str = "valid", name: str = "avgpool") -> int:
        return self._layer("avg_pool2d", (x,), (tuple(kernel), None if stride is None else tuple(stride), padding), name)

    def max_pool2d(self, x: int, kernel: tuple[int, int], stride: tuple[int, int] | None = None,
                   padding: str = "valid", name: str = "maxpool") -> int:
        return self._layer("max_pool2d", (x,), (tuple(kernel), None if stride is None else tuple(stride), padding), name)

    def softmax(self, x: int, name: str = "softmax") -> int:
        return self._layer("softmax", (x,), (), name)

    def hard_swish(self, x: int, name: str = "hswish") -> int:
        return self._layer("hard_swish", (x,), (), name)

    # -- the graph ------------------------------------------------------------------------------------------
    def finish(self, *outputs: int) -> LazyGraph:
        """The graph, with ``outputs`` as its outputs (alive to the last step)."""
        for h in outputs:
            if type(h) is not int or not 0 <= h < len(self._shapes):
                raise ValueError(f"graph {self.name!r}: output {h!r} is not a tensor handle of this builder")
        lasts, x = self._lasts, self._input
        end = len(self._facts)
        for h in outputs:
            lasts[h] = end
        table = OpTable(self.name, tuple(self._facts), self._bytes, list(range(end + 1)), lasts, self._tensors,
                        self._const_bytes, self._quant_channels, (x.quant_channels,), (1,) * len(outputs),
                        tuple(self._runs))
        log, name, input_shape, dtype = self._log, self.name, self._input_shape, self.dtype

        def materialize() -> Graph:
            writer = GraphWriter(name, input_shape, dtype)
            names = [writer.graph.inputs[0]]
            for method, inputs, args, layer_name in log:
                if method is _SEGMENT:  # its layers, reading the segment's input (local handle 0) and each other
                    start, layers = args
                    x = names[inputs[0]]
                    for m, local, a, suffix in layers:
                        names.append(getattr(writer, m)(*[names[start + h] if h else x for h in local], *a,
                                                        name=layer_name + suffix))
                else:
                    names.append(getattr(writer, method)(*[names[h] for h in inputs], *args, name=layer_name))
            return writer.finish(*[names[h] for h in outputs])

        return LazyGraph(name, table, materialize)
