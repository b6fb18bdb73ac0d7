"""MCUNet's memory accounting: the papers' analytic peak and TinyEngine's scheduled arena.

Both see only activations (int8, batch 1, no alignment) and treat RESHAPE as a view of its input.

``analytic``: the peak over ops of every activation alive while the op runs — its inputs and outputs plus
any tensor held for a later op (the block input an identity shortcut keeps) — with no allocator.

``tinyengine``: tensors live from producer to last consumer; a depthwise conv writes its output over its
input when nothing later reads that input (in-place depthwise), and an ADD is fused into the conv that
produces one of its operands (the sum is written into that conv's output buffer); buffers are placed
largest-first, first-fit; the largest im2col buffer and the largest kernel buffer come on top.
"""

from __future__ import annotations

from estimators.ir import Graph, Op
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


def _reshape_aliases(graph: Graph) -> dict[str, str]:
    return {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind == "RESHAPE"}


def analytic_live(graph: Graph) -> tuple[int, ...]:
    """Bytes of the activations alive at each op (MCUNet's accounting)."""
    alias = _reshape_aliases(graph)
    life = _lifetimes(graph, alias)
    return tuple(sum(graph.tensors[n].nbytes for n, (a, b) in life.items() if a <= i <= b)
                 for i in range(len(graph.ops)))


def _last_use(graph: Graph) -> dict[str, int]:
    last = {}
    for i, op in enumerate(graph.ops):
        for n in op.inputs:
            last[n] = i
    for n in graph.outputs:
        last[n] = len(graph.ops)
    return last


def _tinyengine_aliases(graph: Graph) -> dict[str, str]:
    alias = _reshape_aliases(graph)
    last = _last_use(graph)
    producer = {n: op for op in graph.ops for n in op.outputs}
    for i, op in enumerate(graph.ops):
        if op.kind == "DEPTHWISE_CONV_2D":
            x = op.inputs[0]
            if last.get(_root(alias, x), last.get(x)) == i and x not in graph.inputs \
                    and graph.tensors[x].nbytes >= graph.tensors[op.outputs[0]].nbytes:
                alias[op.outputs[0]] = x
        elif op.kind == "ADD":
            acts = [n for n in op.inputs if not graph.tensors[n].const]
            fused = [n for n in acts if n in producer and producer[n].kind == "CONV_2D" and last.get(n) == i]
            if len(acts) == 2 and fused:
                alias[op.outputs[0]] = fused[0]
    return alias


def _im2col_bytes(graph: Graph, op: Op) -> int:
    """TinyEngine's im2col buffer: two int16 columns of Kh·Kw·Cin (1×1 convs too: two input pixels)."""
    if op.kind != "CONV_2D":
        return 0
    kh, kw = op.attrs.get("kernel", (1, 1))
    cin = graph.tensors[op.inputs[0]].shape[-1]
    return 2 * kh * kw * cin * 2


def _kernel_buffer_bytes(graph: Graph, op: Op) -> int:
    """TinyEngine's depthwise buffer: one zero-padded input channel, (H + Kh − 1)·(W + Kw − 1) int8."""
    if op.kind != "DEPTHWISE_CONV_2D":
        return 0
    _, h, w, _ = graph.tensors[op.inputs[0]].shape
    kh, kw = op.attrs.get("kernel", (1, 1))
    return (h + kh - 1) * (w + kw - 1)


def tinyengine_plan(graph: Graph) -> tuple[int, tuple[int, ...]]:
    """(peak activation bytes, live bytes per op) under TinyEngine's schedule."""
    alias = _tinyengine_aliases(graph)
    life = _lifetimes(graph, alias)
    size: dict[str, int] = {}
    for name, t in graph.tensors.items():
        if not t.const:
            r = _root(alias, name)
            size[r] = max(size.get(r, 0), t.nbytes)
    buffers = [Buffer(size[n], a, b, n) for n, (a, b) in life.items()]
    arena = arena_size(buffers, first_fit_plan(buffers))
    extra = max((_im2col_bytes(graph, op) for op in graph.ops), default=0) + \
        max((_kernel_buffer_bytes(graph, op) for op in graph.ops), default=0)
    live = tuple(sum(b.size for b in buffers if b.first <= i <= b.last)
                 + _im2col_bytes(graph, op) + _kernel_buffer_bytes(graph, op)
                 for i, op in enumerate(graph.ops))
    return arena + extra, live
