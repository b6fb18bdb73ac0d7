"""GraphBuilder: the shared way search spaces describe an int8 network in the IR, layer by layer.

Each method appends the op(s) TFLite would run for that layer, with weight and bias tensors in TFLite's
layouts (conv: [Cout, Kh, Kw, Cin]; depthwise: [1, Kh, Kw, C]; fully connected: [Cout, Cin]; int32 bias),
and returns the name of the output activation tensor.
"""

from __future__ import annotations

import math

from estimators.ir import Graph, Tensor, make_op, make_tensor

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


class GraphBuilder:
    """Builds a :class:`Graph` for a batch-1 int8 model with an NHWC (or N×L×C) input."""

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
