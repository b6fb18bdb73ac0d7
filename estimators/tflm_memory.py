"""TensorFlow Lite Micro's arena: the planned head and the persistent tail, emulated from the IR.

Head (``MicroAllocator::CommitStaticMemoryPlan``): every non-constant tensor with bytes becomes one buffer,
in tensor order, then every kernel scratch buffer in request order; sizes rounded up to 16 bytes.
Lifetimes count allocation scopes: graph inputs are created at step 0, op ``i`` runs at step ``i + 1``
(its outputs are created there, its inputs and outputs are used there, its scratch buffers live only
there) and graph outputs live to the last step. The greedy planner places them (:mod:`estimators.planner`).

Tail: allocations from the arena's end, each rounded to its alignment: the allocator's own objects,
one node+registration per op, one eval tensor per tensor, each op's parsed builtin parameters and the
OpData its kernel keeps (with per-channel output multipliers and shifts), scratch-buffer handles, and the
interpreter's persistent input/output tensors with their quantization. Struct sizes follow TFLM's
structs for the target's pointer width; the interpreter's report (``tinynas.tflm.measure_arena``) on
the 64-bit host is the check.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from estimators.ir import Graph, Op
from estimators.planner import Buffer, align_up, arena_size, greedy_plan

ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment()

# Scratch requests of one op: bytes per buffer, in request order.
ScratchFn = Callable[[Graph, Op], list[int]]


@dataclasses.dataclass(frozen=True)
class HeadPlan:
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    bytes: int


def reference_scratch(graph: Graph, op: Op) -> list[int]:
    """Scratch buffers TFLM's reference kernels request for int8 ops (only MEAN-style reductions do)."""
    if op.kind in ("MEAN", "SUM") and graph.tensors[op.inputs[0]].dtype in ("int8", "int16"):
        x, axes, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
        return [4 * y.numel, 4 * len(x.shape), 4 * axes.numel]
    if op.kind in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        x, axes = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        return [4 * len(x.shape), 4 * axes.numel]
    return []


def head_buffers(graph: Graph, scratch: ScratchFn = reference_scratch) -> list[Buffer]:
    """The buffers TFLM's planner receives, in the order it receives them."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for n in graph.inputs:
        first.setdefault(n, 0)
        last[n] = 0
    scratch_buffers = []
    for i, op in enumerate(graph.ops):
        step = i + 1
        for n in op.outputs:
            first.setdefault(n, step)
        for n in (*op.inputs, *op.outputs):
            last[n] = step
        scratch_buffers += [Buffer(align_up(b, ARENA_ALIGNMENT), step, step, f"{op.name}/scratch{k}")
                            for k, b in enumerate(scratch(graph, op)) if b > 0]
    end = len(graph.ops)
    for n in graph.outputs:
        first.setdefault(n, end)
        last[n] = end
    tensors = [Buffer(align_up(t.nbytes, ARENA_ALIGNMENT), first[name], last[name], name)
               for name, t in graph.tensors.items() if not t.const and t.nbytes and name in first]
    return tensors + scratch_buffers


def plan_head(graph: Graph, scratch: ScratchFn = reference_scratch) -> HeadPlan:
    buffers = head_buffers(graph, scratch)
    offsets = greedy_plan(buffers)
    return HeadPlan(tuple(buffers), tuple(offsets), arena_size(buffers, offsets))


# -- tail ----------------------------------------------------------------------------------------------
# Bytes of TFLM structs by pointer width (8: 64-bit host, 4: 32-bit MCU), from their definitions.
_STRUCTS = {
    8: dict(eval_tensor=24, node=64, tflite_tensor=64, affine_quant=24, base=488),
    4: dict(eval_tensor=12, node=32, tflite_tensor=40, affine_quant=12, base=244),
}
# The kernel's OpData (bytes by pointer width) and whether it keeps per-channel multipliers and shifts.
_OP_DATA = {
    "CONV_2D": ({8: 80, 4: 64}, True),
    "DEPTHWISE_CONV_2D": ({8: 80, 4: 64}, True),
    "FULLY_CONNECTED": ({8: 72, 4: 56}, True),
    "AVERAGE_POOL_2D": ({8: 32, 4: 32}, False),
    "MAX_POOL_2D": ({8: 32, 4: 32}, False),
    "ADD": ({8: 60, 4: 60}, False),
    "MUL": ({8: 36, 4: 36}, False),
    "MEAN": ({8: 44, 4: 44}, False),
    "SUM": ({8: 44, 4: 44}, False),
    "SOFTMAX": ({8: 80, 4: 48}, False),
    "PAD": ({8: 56, 4: 56}, False),
    "CONCATENATION": ({8: 80, 4: 48}, False),
    "HARD_SWISH": ({8: 20, 4: 20}, False),
    "LOGISTIC": ({8: 24, 4: 24}, False),
    "QUANTIZE": ({8: 32, 4: 24}, False),
    "DEQUANTIZE": ({8: 32, 4: 24}, False),
}
# The parsed builtin options (TfLite*Params, no pointers), as the tail grows by them.
_BUILTIN_DATA = {"CONV_2D": 28, "DEPTHWISE_CONV_2D": 28, "FULLY_CONNECTED": 32, "AVERAGE_POOL_2D": 40,
                 "MAX_POOL_2D": 40, "ADD": 8, "MUL": 8, "MEAN": 8, "SUM": 8, "SOFTMAX": 4, "RESHAPE": 36,
                 "CONCATENATION": 8}


def _output_channels(graph: Graph, op: Op) -> int:
    weights = graph.op_weights(op)
    if op.kind == "FULLY_CONNECTED" or not weights:
        return graph.tensors[op.outputs[0]].shape[-1]
    return weights[0].shape[0] if op.kind == "CONV_2D" else weights[0].shape[-1]


def tail_allocations(graph: Graph, pointer_bytes: int, scratch: ScratchFn = reference_scratch
                     ) -> list[tuple[str, int, int]]:
    """(what, bytes, alignment) of every tail allocation, in TFLM's order."""
    if pointer_bytes not in _STRUCTS:
        raise ValueError(f"pointer_bytes must be one of {sorted(_STRUCTS)}, got {pointer_bytes!r}")
    s, p = _STRUCTS[pointer_bytes], pointer_bytes
    out = [("allocator objects", s["base"], ARENA_ALIGNMENT),
           ("node and registration structs", s["node"] * len(graph.ops), p),
           ("eval tensors", s["eval_tensor"] * len(graph.tensors), p)]
    # Builtin options are parsed for every op, then each kernel's Init allocates its OpData, then each
    # kernel's Prepare its per-channel arrays.
    out += [(f"{op.name} builtin data", _BUILTIN_DATA[op.kind], 4) for op in graph.ops if op.kind in _BUILTIN_DATA]
    for op in graph.ops:
        size = _OP_DATA.get(op.kind, ({p: 0}, False))[0][p]
        if size:
            out.append((f"{op.name} op data", size, ARENA_ALIGNMENT))
    n_scratch = 0
    for op in graph.ops:
        if _OP_DATA.get(op.kind, ({}, False))[1]:
            c = _output_channels(graph, op)
            out += [(f"{op.name} multipliers", 4 * c, ARENA_ALIGNMENT), (f"{op.name} shifts", 4 * c, ARENA_ALIGNMENT)]
        n_scratch += sum(1 for b in scratch(graph, op) if b > 0)
    if n_scratch:
        out.append(("scratch buffer handles", p * n_scratch, p))
    for role, names in (("input", graph.inputs), ("output", graph.outputs)):
        out.append((f"{role} tensor pointers", p * len(names), ARENA_ALIGNMENT))
        for n in names:
            out.append((f"{role} {n} tensor", s["tflite_tensor"], p))
            channels = max(1, graph.tensors[n].quant_channels)
            out += [(f"{role} {n} quantization", s["affine_quant"], p),
                    (f"{role} {n} zero points", 4 + 4 * channels, 4)]
    return out


def tail_bytes(graph: Graph, pointer_bytes: int, scratch: ScratchFn = reference_scratch) -> int:
    """Persistent arena bytes: the allocations of :func:`tail_allocations`, each aligned, end to end."""
    used = 0
    for _, size, alignment in tail_allocations(graph, pointer_bytes, scratch):
        used = align_up(used + size, alignment)
    return align_up(used, ARENA_ALIGNMENT)


# -- CMSIS-NN scratch ------------------------------------------------------------------------------------
def cmsis_nn_scratch(isa: str) -> ScratchFn:
    """Scratch requests of TFLM's CMSIS-NN kernels on a core with ``isa`` ('dsp', 'mve' or 'generic')."""
    if isa not in ("dsp", "mve", "generic"):
        raise ValueError(f"kernel isa must be 'dsp', 'mve' or 'generic', got {isa!r}")

    def scratch(graph: Graph, op: Op) -> list[int]:
        if op.kind == "CONV_2D":
            kh, kw = op.attrs.get("kernel", (1, 1))
            cin = graph.tensors[op.inputs[0]].shape[-1]
            if (kh, kw) == (1, 1) and tuple(op.attrs.get("stride", (1, 1))) == (1, 1) \
                    and op.attrs.get("padding", "valid") in ("valid", "same"):
                return []  # arm_convolve_1x1_s8_fast: no im2col
            if isa == "mve":
                return [4 * math.ceil(kh * kw * cin / 16) * 16]
            return [2 * align_up(kh * kw * cin, 4) * 2]
        if op.kind == "DEPTHWISE_CONV_2D":
            kh, kw = op.attrs.get("kernel", (1, 1))
            c = graph.tensors[op.inputs[0]].shape[-1]
            fast = (kh, kw) == (3, 3) and op.attrs.get("depth_multiplier", 1) == 1
            return [] if fast and isa == "dsp" else [c * kh * kw * 2]
        if op.kind == "FULLY_CONNECTED" and isa == "mve":
            return [4 * graph.tensors[op.outputs[0]].shape[-1]]
        return reference_scratch(graph, op)

    return scratch
