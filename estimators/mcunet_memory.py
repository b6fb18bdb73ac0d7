"""MCUNet's memory accounting: the papers' analytic peak and TinyEngine's scheduled arena.

Both see only activations (int8, batch 1, no alignment) and treat RESHAPE as a view of its input, and a
PAD as its unpadded input (MCUNet's kernels pad inside the conv: TinyEngine folds a PAD into the conv that
reads it, and the papers' Act counts a layer's unpadded input).

``analytic``: the peak over ops of every activation alive while the op runs — its inputs and outputs plus
any tensor held for a later op (the block input an identity shortcut keeps) — with no allocator.

``tinyengine``: TinyEngine's code generator (mit-han-lab/tinyengine ``code_generator/
GeneralMemoryScheduler.py``, ``operators/*.py``): RESHAPE / QUANTIZE / DEQUANTIZE are skipped and PAD is
folded into its conv (all views here); a depthwise conv writes its output over its input (in-place
depthwise); ADD is an op of its own; tensors live from producer to last consumer and are placed
largest-first, first-fit; on top come the largest ``sbuf`` (im2col of a conv, or the padded int16 planes
of an in-place depthwise) and the largest ``kbuf`` (a K×K conv's weights in int16) of any op.
"""

from __future__ import annotations

from estimators.ir import CONV_KINDS, Graph, Op
from estimators.planner import Buffer, arena_size, first_fit_plan


def _root(alias: dict[str, str], name: str) -> str:
    while name in alias:
        name = alias[name]
    return name


def _lifetimes(graph: Graph, alias: dict[str, str]) -> dict[str, list[int]]:
    """[first, last] op index of each buffer root (graph inputs from 0, outputs to the last op)."""
    life: dict[str, list[int]] = {}

    def touch(name: str, i: int) -> None:
        r = _root(alias, name)
        span = life.setdefault(r, [i, i])
        span[0], span[1] = min(span[0], i), max(span[1], i)

    for n in graph.inputs:
        touch(n, 0)
    for i, op in enumerate(graph.ops):
        for n in (*op.inputs, *op.outputs):
            if not graph.tensors[n].const:
                touch(n, i)
    for n in graph.outputs:
        touch(n, max(len(graph.ops) - 1, 0))
    return life


def _view_aliases(graph: Graph) -> dict[str, str]:
    return {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind in ("RESHAPE", "PAD")}


def analytic_live(graph: Graph) -> tuple[int, ...]:
    """Bytes of the activations alive at each op (MCUNet's accounting)."""
    alias = _view_aliases(graph)
    life = _lifetimes(graph, alias)
    return tuple(sum(graph.tensors[n].nbytes for n, (a, b) in life.items() if a <= i <= b)
                 for i in range(len(graph.ops)))


#: Ops TinyEngine's code generator does not run: views, and PAD (folded into the conv that reads it).
TINYENGINE_VIEWS = frozenset({"RESHAPE", "QUANTIZE", "DEQUANTIZE", "PAD"})


def _tinyengine_aliases(graph: Graph) -> dict[str, str]:
    """Output → input for views and for in-place depthwise convs (TinyEngine writes a depthwise output
    over its input; done here only when nothing later reads that input, which holds in every MBConv)."""
    alias = {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind in TINYENGINE_VIEWS}
    last: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for n in op.inputs:
            last[_root(alias, n)] = i
    for n in graph.outputs:
        last[_root(alias, n)] = len(graph.ops)
    for i, op in enumerate(graph.ops):
        if op.kind == "DEPTHWISE_CONV_2D":
            x = _root(alias, op.inputs[0])
            if last.get(x) == i and x not in graph.inputs \
                    and graph.tensors[x].nbytes >= graph.tensors[op.outputs[0]].nbytes:
                alias[op.outputs[0]] = op.inputs[0]
    return alias


def pad_inputs(graph: Graph) -> dict[str, str]:
    """PAD output → PAD input, for each PAD of ``graph``."""
    return {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind == "PAD"}


def _runtime_buffer_bytes(graph: Graph, op: Op, pads: dict[str, str]) -> int:
    """TinyEngine's ``sbuf`` of one op (``get_sbuf_size``): a conv's im2col, two int16 columns of
    Kh·Kw·Cin (1×1 convs too, and the classifier: its generator runs a FULLY_CONNECTED as a 1×1 conv); an
    in-place depthwise's two int16 padded planes, 2·(H + Kh − 1)·(W + Kw − 1) of its unpadded input (a folded
    PAD's input)."""
    if op.kind == "FULLY_CONNECTED":
        return 2 * graph.tensors[op.inputs[0]].shape[-1] * 2
    kh, kw = op.attrs.get("kernel", (1, 1))
    _, h, w, cin = graph.tensors[_unpadded(op.inputs[0], pads)].shape if op.kind in CONV_KINDS \
        else (0, 0, 0, 0)
    if op.kind == "CONV_2D":
        return 2 * kh * kw * cin * 2
    if op.kind == "DEPTHWISE_CONV_2D":
        return 2 * (h + kh - 1) * (w + kw - 1)
    return 0


def _unpadded(name: str, pads: dict[str, str]) -> str:
    """``name``, or the input of the PAD (or chain of them) that wrote it (``pads``: PAD output → input)."""
    while name in pads:
        name = pads[name]
    return name


def _kernel_buffer_bytes(graph: Graph, op: Op) -> int:
    """TinyEngine's ``kbuf`` (``get_kbuf_size``): a K×K (K > 1) conv's weights widened to int16."""
    if op.kind != "CONV_2D" or op.attrs.get("kernel", (1, 1))[0] == 1:
        return 0
    return 2 * graph.op_weights(op)[0].numel


def tinyengine_plan(graph: Graph) -> tuple[int, tuple[int, ...]]:
    """(peak SRAM bytes, live bytes per op) under TinyEngine's schedule (its ``GeneralMemoryScheduler``):
    first-fit arena + the largest ``sbuf`` + the largest ``kbuf`` over all ops."""
    alias = _tinyengine_aliases(graph)
    life = _lifetimes(graph, alias)
    pads = pad_inputs(graph)
    size: dict[str, int] = {}
    for name, t in graph.tensors.items():
        if not t.const and name not in pads:
            r = _root(alias, name)
            size[r] = max(size.get(r, 0), t.nbytes)
    buffers = [Buffer(size[n], a, b, n) for n, (a, b) in life.items()]
    arena = arena_size(buffers, first_fit_plan(buffers))
    sbuf = [_runtime_buffer_bytes(graph, op, pads) for op in graph.ops]
    kbuf = [_kernel_buffer_bytes(graph, op) for op in graph.ops]
    live = tuple(sum(b.size for b in buffers if b.first <= i <= b.last) + s + k
                 for i, (s, k) in enumerate(zip(sbuf, kbuf)))
    return arena + max(sbuf, default=0) + max(kbuf, default=0), live
