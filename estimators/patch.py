"""MCUNetV2 patch-based inference (Lin et al., NeurIPS 2021): the first layers run patch by patch.

The output of the patch stage (the first ``n_layers`` conv / depthwise layers and the ops between them)
is cut into an ``n_patches`` × ``n_patches`` grid; each output patch is computed from its receptive field,
traced backwards through the stage (a K×K layer of stride S needs (g − 1)·S + K input rows for g output
rows: stride 1 adds K − 1, stride 2 gives 2(g − 1) + K). While the stage runs, one patch's tiles are alive
plus the stage's full output buffer, which the patches fill; after it, the network runs layer by layer.
Neighbouring patches overlap on their inputs and recompute those pixels: :attr:`PatchPlan.extra_macs`.

Memory is MCUNet's analytic accounting (int8 activations, no allocator), optionally with in-place
depthwise convs as TinyEngine runs them; the input image is read one patch at a time (MCUNetV2 counts the
input patch, not the whole image, in the patch stage).
"""

from __future__ import annotations

import dataclasses
import math

from estimators.builder import conv_output_size
from estimators.ir import CONV_KINDS, Graph, Op
from estimators.macs import op_macs
from estimators.mcunet_memory import _kernel_buffer_bytes, _runtime_buffer_bytes, pad_inputs

WINDOW_KINDS = CONV_KINDS | {"AVERAGE_POOL_2D", "MAX_POOL_2D"}
POINTWISE_KINDS = frozenset({"ADD", "MUL", "PAD", "HARD_SWISH", "LOGISTIC", "RELU", "RELU6", "RELU_N1_TO_1",
                             "QUANTIZE", "DEQUANTIZE"})
PATCH_RUNTIMES = ("analytic", "tinyengine")


@dataclasses.dataclass(frozen=True)
class PatchConfig:
    """``patches`` per side of the grid (4 → 4 × 4 patches) over the first ``layers`` conv layers."""

    patches: int
    layers: int

    def __post_init__(self) -> None:
        for field in ("patches", "layers"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"patch {field} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class PatchPlan:
    """How the patch stage runs and what it costs.

    ``stage_ops``: number of graph ops in the patch stage; ``output``: the stage's output tensor;
    ``output_tile``: (h, w) of one output patch (the largest); ``input_tile``: its receptive field on the
    graph input (h, w), unclipped; ``overlap``: input pixels (h, w) that neighbouring patches share;
    ``stage_peak_bytes`` / ``rest_peak_bytes``: analytic peaks of the two parts (the first with the full
    output buffer); ``peak_bytes``: the larger; ``baseline_peak_bytes``: the layer-by-layer peak under the same
    accounting; ``extra_macs``: MACs recomputed in overlaps;
    ``live_bytes``: bytes alive while each op runs; ``tiles``: (h, w) of the largest patch of every
    stage tensor.
    """

    n_patches: int
    n_layers: int
    stage_ops: int
    output: str
    output_tile: tuple[int, int]
    input_tile: tuple[int, int]
    overlap: tuple[int, int]
    stage_peak_bytes: int
    rest_peak_bytes: int
    peak_bytes: int
    baseline_peak_bytes: int
    extra_macs: int
    live_bytes: tuple[int, ...]
    tiles: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def patch_count(self) -> int:
        return self.n_patches * self.n_patches


def _stage_length(graph: Graph, n_layers: int) -> int:
    """Ops up to the ``n_layers``-th conv layer and the elementwise ops that close its block (an ADD)."""
    convs = [i for i, op in enumerate(graph.ops) if op.kind in CONV_KINDS]
    if n_layers > len(convs):
        raise ValueError(f"patch layers={n_layers}: graph {graph.name!r} has only {len(convs)} conv layers")
    end = convs[n_layers - 1] + 1
    produced = set(graph.inputs) | {n for op in graph.ops[:end] for n in op.outputs}
    while end < len(graph.ops) and graph.ops[end].kind == "ADD" and \
            all(n in produced or graph.tensors[n].const for n in graph.ops[end].inputs):
        produced.update(graph.ops[end].outputs)
        end += 1
    return end


def _stage_output(graph: Graph, end: int) -> str:
    inside = set(graph.inputs) | {n for op in graph.ops[:end] for n in op.outputs}
    later = {n for op in graph.ops[end:] for n in op.inputs} | set(graph.outputs)
    crossing = sorted(inside & later)
    if len(crossing) != 1:
        raise ValueError(f"patch stage of {end} ops must hand exactly one tensor to the rest of the graph; "
                         f"{len(crossing)} cross it: {crossing[:4]}; choose a layers= count that ends a block")
    for op in graph.ops[:end]:
        if op.kind not in WINDOW_KINDS | POINTWISE_KINDS:
            raise ValueError(f"op {op.name!r} ({op.kind}) cannot run patch by patch; allowed in the patch stage: "
                             f"{', '.join(sorted(WINDOW_KINDS | POINTWISE_KINDS))}")
    return crossing[0]


def _pads_before(graph: Graph, op: Op, axis: int) -> int:
    """Rows (axis 1) or columns (axis 2) of zero padding before the input of a window op or PAD."""
    if op.kind == "PAD":
        return op.attrs["pads"][axis][0]
    if op.attrs.get("padding", "same") != "same":
        return 0
    size = graph.tensors[op.inputs[0]].shape[axis]
    k, s = op.attrs["kernel"][axis - 1], op.attrs["stride"][axis - 1]
    out = conv_output_size(size, k, s, "same")
    return max((out - 1) * s + k - size, 0) // 2


def _back(graph: Graph, stage: list[Op], output: str, regions: dict[int, tuple[int, int]],
          axis: int) -> dict[str, tuple[int, int]]:
    """[start, stop) along ``axis`` of every stage tensor needed for ``regions`` of the output (one patch)."""
    need: dict[str, tuple[int, int]] = {output: regions}
    for op in reversed(stage):
        span = need.get(op.outputs[0])
        if span is None:
            continue
        start, stop = span
        for x in op.inputs:
            t = graph.tensors[x]
            if t.const:
                continue
            if op.kind in WINDOW_KINDS or op.kind == "PAD":
                k, s = (op.attrs["kernel"][axis - 1], op.attrs["stride"][axis - 1]) if op.kind != "PAD" else (1, 1)
                p = _pads_before(graph, op, axis)
                a, b = start * s - p, (stop - 1) * s - p + k
            else:
                a, b = start, stop
            a, b = max(a, 0), min(b, t.shape[axis])
            if x in need:
                a, b = min(a, need[x][0]), max(b, need[x][1])
            need[x] = (a, b)
    return need


def _grid(size: int, n: int) -> list[tuple[int, int]]:
    """Split ``size`` rows into ``n`` patches (the first ones one row larger when it does not divide)."""
    if n > size:
        raise ValueError(f"patches={n} per side exceeds the stage output's {size} rows/columns")
    step = math.ceil(size / n)
    return [(i * step, min((i + 1) * step, size)) for i in range(n) if i * step < size]


def _receptive_field(stage: list[Op], graph: Graph, tile: int, axis: int) -> int:
    """Input extent of ``tile`` output rows through the stage's longest window chain (unclipped)."""
    need = {stage[-1].outputs[0]: tile}
    for op in reversed(stage):
        g = need.get(op.outputs[0])
        if g is None:
            continue
        for x in op.inputs:
            if graph.tensors[x].const:
                continue
            if op.kind in WINDOW_KINDS:
                k, s = op.attrs["kernel"][axis - 1], op.attrs["stride"][axis - 1]
                g_in = (g - 1) * s + k  # stride 1: g + k − 1; stride 2: 2(g − 1) + k
            else:
                g_in = g
            need[x] = max(need.get(x, 0), g_in)
    return need.get(graph.inputs[0], tile)


def _live(graph: Graph, lo: int, hi: int, size: dict[str, int], inplace_depthwise: bool, hold_shortcuts: bool,
          pinned: str | None = None) -> tuple[int, ...]:
    """Bytes alive at each op of ``graph.ops[lo:hi]`` (MCUNet's accounting; RESHAPE is a view), tensor
    sizes from ``size`` where given; an in-place depthwise conv counts only the larger of its input and
    output when nothing later reads the input; without ``hold_shortcuts`` only the op's own inputs and
    outputs count (and ``pinned``, alive throughout)."""
    alias = {op.outputs[0]: op.inputs[0] for op in graph.ops if op.kind == "RESHAPE"}

    def root(n: str) -> str:
        while n in alias:
            n = alias[n]
        return n

    span: dict[str, list[int]] = {}
    for i in range(lo, hi):
        op = graph.ops[i]
        for n in (*op.inputs, *op.outputs):
            if not graph.tensors[n].const:
                r = root(n)
                a, b = span.get(r, (i, i))
                span[r] = [min(a, i), max(b, i)]
    for n in graph.inputs:
        if root(n) in span:
            span[root(n)][0] = lo
    for n in graph.outputs:
        if root(n) in span:
            span[root(n)][1] = hi - 1
    if pinned is not None:
        span[root(pinned)] = [lo, hi - 1]
    nbytes = {r: size.get(r, graph.tensors[r].nbytes) for r in span}
    live = []
    for i in range(lo, hi):
        op = graph.ops[i]
        own = {root(n) for n in (*op.inputs, *op.outputs)} | {pinned}
        total = sum(nbytes[r] for r, (a, b) in span.items() if a <= i <= b and (hold_shortcuts or r in own))
        if inplace_depthwise and op.kind == "DEPTHWISE_CONV_2D" and span[root(op.inputs[0])][1] == i:
            total -= min(nbytes[root(op.inputs[0])], nbytes[root(op.outputs[0])])
        live.append(total)
    return tuple(live)


def patch_plan(graph: Graph, n_patches: int, n_layers: int, inplace_depthwise: bool = False,
               hold_shortcuts: bool = True) -> PatchPlan:
    """Patch-based inference of ``graph``'s first ``n_layers`` conv layers on ``n_patches`` × ``n_patches``.

    ``inplace_depthwise``: count a depthwise conv as writing over its input (TinyEngine; MCUNetV2's
    per-block memory figures), else as input + output (MCUNet's published "Act"). ``hold_shortcuts``:
    count the block input an identity shortcut keeps while the block runs (MCUNet's "Act" does; MCUNetV2's
    per-block figures count each layer's input + output only).
    """
    PatchConfig(n_patches, n_layers)  # validates
    end = _stage_length(graph, n_layers)
    output = _stage_output(graph, end)
    stage = graph.ops[:end]
    if len(graph.tensors[output].shape) != 4:
        raise ValueError(f"patch stage output {output!r} has shape {graph.tensors[output].shape}; need N×H×W×C")
    _, oh, ow, _ = graph.tensors[output].shape
    rows, cols = _grid(oh, n_patches), _grid(ow, n_patches)
    # Per-axis spans of every stage tensor for each patch row / column (the grid is separable).
    row_needs = [_back(graph, stage, output, r, 1) for r in rows]
    col_needs = [_back(graph, stage, output, c, 2) for c in cols]

    def extent(needs, name):
        return [n[name][1] - n[name][0] for n in needs]

    # MACs: each op computes, summed over patches, sum(row extents) × sum(col extents) output pixels.
    extra = 0
    for op in stage:
        macs = op_macs(graph, op)
        if macs:
            _, h, w, _ = graph.tensors[op.outputs[0]].shape
            extra += macs * sum(extent(row_needs, op.outputs[0])) * sum(extent(col_needs, op.outputs[0])) \
                // (h * w) - macs
    # Memory: the largest patch's tiles alive at each stage op (stage output: its full buffer instead).
    tiles = {name: (max(extent(row_needs, name)), max(extent(col_needs, name))) for name in row_needs[0]}
    tile = {name: h * w * graph.tensors[name].nbytes // (graph.tensors[name].shape[1] * graph.tensors[name].shape[2])
            for name, (h, w) in tiles.items()}
    # The stage output is its full buffer (the patches fill it); the graph input is read patch by patch.
    tile[output] = graph.tensors[output].nbytes
    stage_live = _live(graph, 0, end, tile, inplace_depthwise, hold_shortcuts, pinned=output)
    rest_live = _live(graph, end, len(graph.ops), {}, inplace_depthwise, hold_shortcuts)
    baseline = max(_live(graph, 0, len(graph.ops), {}, inplace_depthwise, hold_shortcuts), default=0)
    input_tile = tuple(_receptive_field(stage, graph, max(b - a for a, b in grid), axis)
                       for axis, grid in ((1, rows), (2, cols)))
    in_shape = graph.tensors[graph.inputs[0]].shape
    scale = [in_shape[axis] / graph.tensors[output].shape[axis] for axis in (1, 2)]
    overlap = tuple(max(int(input_tile[i] - scale[i] * max(b - a for a, b in grid)), 0) if len(grid) > 1 else 0
                    for i, grid in enumerate((rows, cols)))
    stage_peak, rest_peak = max(stage_live), max(rest_live, default=0)
    return PatchPlan(n_patches, n_layers, end, output, (max(b - a for a, b in rows), max(b - a for a, b in cols)),
                     input_tile, overlap, stage_peak, rest_peak, max(stage_peak, rest_peak), baseline, extra,
                     stage_live + rest_live, tiles)


def patch_sram(graph: Graph, config: PatchConfig, runtime: str = "analytic"):
    """:class:`~estimators.sram.SramEstimate` of ``graph`` with its first layers run patch by patch.

    ``analytic``: :func:`patch_plan`'s peak. ``tinyengine``: the peak with in-place depthwise + its largest runtime
    buffer (im2col, or a depthwise's padded planes sized on the patch) and largest kernel buffer.
    """
    from estimators.sram import SramEstimate

    if runtime not in PATCH_RUNTIMES:
        raise ValueError(f"patch-based inference is modelled for runtime {' or '.join(PATCH_RUNTIMES)}, "
                         f"got {runtime!r}")
    plan = patch_plan(graph, config.patches, config.layers, inplace_depthwise=runtime == "tinyengine")
    peak = plan.peak_bytes
    if runtime == "tinyengine":
        pads = pad_inputs(graph)
        sbuf = [_runtime_buffer_bytes(graph, op, pads) for op in graph.ops]
        for i, op in enumerate(graph.ops[:plan.stage_ops]):
            if op.kind == "DEPTHWISE_CONV_2D":  # padded planes of the patch, not of the whole tensor
                (h, w), (kh, kw) = plan.tiles[op.inputs[0]], op.attrs["kernel"]
                sbuf[i] = 2 * (h + kh - 1) * (w + kw - 1)
        peak += max(sbuf, default=0) + max((_kernel_buffer_bytes(graph, op) for op in graph.ops), default=0)
    return SramEstimate(peak, 0, peak, plan.live_bytes)

