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
import functools
import math
from itertools import chain
from operator import itemgetter
from typing import Callable, Sequence

from estimators.ir import Graph, LazyTuple
from estimators.table import OpFacts, OpTable, activation_names, op_values, per_op, per_run, table_of
from estimators.planner import Buffer, align_up, arena_size, greedy_arena, greedy_plan, live_totals

ARENA_ALIGNMENT = 16  # MicroArenaBufferAlignment()
_FIRST = itemgetter(0)

# Scratch requests of one op, from its facts: bytes per buffer, in request order.
ScratchFn = Callable[[OpFacts], list[int]]


@dataclasses.dataclass(frozen=True)
class HeadPlan:
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    bytes: int


def reference_scratch(op: OpFacts) -> list[int]:
    """Scratch buffers TFLM's reference kernels request for int8 ops (only MEAN-style reductions do)."""
    kind = op.kind
    if kind in ("MEAN", "SUM") and op.in_dtype in ("int8", "int16"):
        return [4 * op.out_numel, 4 * len(op.in_shape), 4 * op.aux_numel]
    if kind in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        return [4 * len(op.in_shape), 4 * op.aux_numel]
    if kind == "SVDF":  # svdf_common.cc: int32 rows of batch × filters (and batch × units when int8)
        batch, filters = op.in_shape[0], op.aux_numel // op.in_shape[-1]
        return [4 * batch * filters] + ([4 * batch * op.out_shape[-1]] if op.in_dtype == "int8" else [])
    if kind == "TRANSPOSE_CONV":  # transpose_conv.cc: an int32 (int8) or int64 (int16) accumulator per output
        return {"int8": [4 * op.out_numel], "int16": [8 * op.out_numel]}.get(op.in_dtype, [])
    if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # unidirectional_sequence_lstm.cc: four gate rows
        return [op.cell_bytes] * 4
    return []


def _nonzero_requests(op: OpFacts, scratch: ScratchFn) -> tuple[int, ...]:
    """``op``'s scratch buffers with bytes (a zero-byte request allocates nothing)."""
    return tuple(b for b in scratch(op) if b > 0)


def scratch_requests(table: OpTable, scratch: ScratchFn = reference_scratch) -> list[tuple[int, ...]]:
    """Each op's scratch buffers with bytes, in graph order; each op's facts remember theirs."""
    return per_op(table, scratch, lambda op: _nonzero_requests(op, scratch))


# Per scratch rule: the per_run key of :func:`_run_scratch`.
_RUN_SCRATCH_KEYS: dict[ScratchFn, tuple] = {}


def _run_scratch(ops: tuple[OpFacts, ...], scratch: ScratchFn) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(how many, their arena-aligned sizes, the index in ``ops`` of the op requesting each) of the scratch
    buffers of consecutive ``ops``."""
    sizes: list[int] = []
    at: list[int] = []
    for i, request in enumerate(op_values(ops, scratch, lambda op: _nonzero_requests(op, scratch))):
        for b in request:
            sizes.append(-(-b // ARENA_ALIGNMENT) * ARENA_ALIGNMENT)
            at.append(i)
    return len(sizes), tuple(sizes), tuple(at)


def head_scratch(table: OpTable, scratch: ScratchFn = reference_scratch) -> list[tuple[int, tuple, tuple]]:
    """:func:`_run_scratch` of each run of ``table`` (remembered per run): what the head and the tail need
    of the scratch requests."""
    key = _RUN_SCRATCH_KEYS.get(scratch)
    if key is None:
        key = _RUN_SCRATCH_KEYS.setdefault(scratch, ("head scratch", scratch))
    return per_run(table, key, lambda ops: _run_scratch(ops, scratch))


def _head_columns(table: OpTable, run_scratch: list[tuple[int, tuple, tuple]]
                  ) -> tuple[list[int], list[int], list[int]]:
    """:func:`head_buffers` as columns (sizes, firsts, lasts): the table's activations, then each op's
    scratch buffers (``run_scratch``: :func:`head_scratch`), alive only at its step."""
    sizes = [-(-b // ARENA_ALIGNMENT) * ARENA_ALIGNMENT for b in table.act_sizes]
    firsts, lasts = list(table.act_firsts), list(table.act_lasts)
    step = 1  # op i runs at step i + 1
    for run, (n, run_sizes, at) in zip(table.runs, run_scratch):
        if n:
            sizes += run_sizes
            steps = [step + i for i in at]
            firsts += steps
            lasts += steps
        step += len(run.ops)
    return sizes, firsts, lasts


def head_buffers(graph: Graph, scratch: ScratchFn = reference_scratch) -> list[Buffer]:
    """The buffers TFLM's planner receives, in the order it receives them."""
    table = table_of(graph)
    requests = scratch_requests(table, scratch)
    labels = activation_names(graph) + [f"{graph.ops[i].name}/scratch{k}" for i, req in enumerate(requests)
                                         for k in range(len(req))]
    columns = _head_columns(table, head_scratch(table, scratch))
    return [Buffer(size, a, b, label) for size, a, b, label in zip(*columns, labels, strict=True)]


def plan_head(graph: Graph, scratch: ScratchFn = reference_scratch) -> HeadPlan:
    buffers = head_buffers(graph, scratch)
    offsets = greedy_plan(buffers)
    return HeadPlan(tuple(buffers), tuple(offsets), arena_size(buffers, offsets))


def head_bytes_and_live(table: OpTable, run_scratch: list[tuple[int, tuple, tuple]]) -> tuple[int, Sequence[int]]:
    """(planned head bytes, bytes alive while each op runs: summed when first read), from the table's
    :func:`head_scratch`; what :func:`plan_head` and ``live_bytes`` give, without :class:`Buffer` objects."""
    sizes, firsts, lasts = _head_columns(table, run_scratch)
    head = greedy_arena(sizes, firsts, lasts)
    return head, LazyTuple(lambda: live_totals(sizes, firsts, lasts, range(1, len(table.ops) + 1)))


# -- tail ----------------------------------------------------------------------------------------------
# Bytes of TFLM structs by pointer width (8: 64-bit host, 4: 32-bit MCU), from their definitions; ``base``: the
# allocator's own objects, allocated first (``base_alignment``).
_STRUCTS = {
    8: dict(eval_tensor=24, node=64, tflite_tensor=64, affine_quant=24, base=488, base_alignment=16, end_alignment=16),
    4: dict(eval_tensor=12, node=32, tflite_tensor=40, affine_quant=12, base=244, base_alignment=16, end_alignment=16),
}
# As built by arm-none-eabi-gcc for a Cortex-M (TFLM 90b983c, GCC 12.2): short enums shrink TfLiteTensor (its type
# and allocation type take a byte each) to 32 B, and the allocator's objects are RecordingSingleArenaBufferAllocator
# 52 + GreedyMemoryPlanner 44 + RecordingMicroAllocator 124 + MicroBuiltinDataAllocator 8 + SubgraphAllocations 8
# = 236 B, each 4-aligned; the tail the board reports ends where its last allocation does (``end_alignment``).
# With these the emulated M4's tail is met to the byte (tests/test_firmware.py).
_STRUCTS_ARM_EABI = {**_STRUCTS[4], "tflite_tensor": 32, "base": 236, "base_alignment": 4, "end_alignment": 4}
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
    # sizeof on x86-64 and arm-none-eabi (Cortex-M4) of OpDataSvdf, transpose_conv.cc's OpData, OpDataLSTM,
    # StridedSliceParams.
    "SVDF": ({8: 36, 4: 36}, False),
    "TRANSPOSE_CONV": ({8: 80, 4: 72}, True),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ({8: 688, 4: 688}, False),
    "STRIDED_SLICE": ({8: 84, 4: 84}, False),
    "RELU": ({8: 28, 4: 28}, False),  # ReluOpData, Relu6OpData (activations.h)
    "RELU6": ({8: 8, 4: 8}, False),
}
# The OpData each kernel's Init allocates in TFLM's CMSIS-NN build for a Cortex-M (runtime=tflm), as built by
# arm-none-eabi-gcc (TFLM 90b983c, GCC 12.2): kind → (sizeof, its kernel file under tensorflow/lite/micro/kernels,
# the struct); the emulated M4's arenas in tests/test_firmware.py check them.
OP_DATA_ARM_CMSIS_NN = {
    "CONV_2D": (60, "cmsis_nn/conv.cc", "OpData"),
    "DEPTHWISE_CONV_2D": (60, "cmsis_nn/depthwise_conv.cc", "OpData"),
    "FULLY_CONNECTED": (72, "cmsis_nn/fully_connected.cc", "OpData"),
    "AVERAGE_POOL_2D": (36, "cmsis_nn/pooling.cc", "OpData"),
    "MAX_POOL_2D": (36, "cmsis_nn/pooling.cc", "OpData"),
    "ADD": (60, "cmsis_nn/add.cc", "OpData"),
    "MUL": (36, "mul_common.cc", "OpDataMul"),
    "MEAN": (44, "reduce.cc", "OpDataReduce"),
    "SUM": (44, "reduce.cc", "OpDataReduce"),
    "SOFTMAX": (64, "cmsis_nn/softmax.cc", "CMSISNNSoftmaxParams"),
    "PAD": (56, "pad_common.cc", "OpData"),
    "CONCATENATION": (24, "concatenation.cc", "OpData"),
    "HARD_SWISH": (20, "hard_swish.cc", "HardSwishParams"),
    "LOGISTIC": (16, "logistic.cc", "OpDataLogistic"),
    "QUANTIZE": (32, "quantize.cc", "OpDataQuantizeReference"),
    "DEQUANTIZE": (32, "dequantize.cc", "DequantizeOpData"),
    "SVDF": (40, "cmsis_nn/svdf.cc", "CmsisNnOpDataSvdf"),
    "TRANSPOSE_CONV": (76, "cmsis_nn/transpose_conv.cc", "OpData"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (912, "cmsis_nn/unidirectional_sequence_lstm.cc", "OpData"),
    "STRIDED_SLICE": (84, "strided_slice_common.cc", "StridedSliceParams"),
    "RELU": (28, "activations.cc", "ReluOpData"),
    "RELU6": (8, "activations.cc", "Relu6OpData"),
}
# The parsed builtin options (TfLite*Params, no pointers), as the tail grows by them: bytes, each aligned to 4 (the
# 64-bit host interpreter's, which the tests measure; also used for 32-bit targets other than Arm).
_BUILTIN_DATA = {"CONV_2D": 28, "DEPTHWISE_CONV_2D": 28, "FULLY_CONNECTED": 32, "AVERAGE_POOL_2D": 40,
                 "MAX_POOL_2D": 40, "ADD": 8, "MUL": 8, "MEAN": 8, "SUM": 8, "SOFTMAX": 4, "RESHAPE": 36,
                 "CONCATENATION": 8, "SVDF": 12, "TRANSPOSE_CONV": 20, "UNIDIRECTIONAL_SEQUENCE_LSTM": 16,
                 "STRIDED_SLICE": 24}
# The same structs built by arm-none-eabi-gcc (Arm EABI for bare metal: an enum takes the fewest bytes that hold
# its values, -fshort-enums by default): (sizeof, alignof) with TFLM 90b983c, GCC 12.2. Each is allocated with
# its alignof (MicroBuiltinDataAllocator), so TfLiteFullyConnectedParams (two enums, two bools, one enum) is 5 B
# at any address. tests/test_firmware.py checks these against the compiler.
_BUILTIN_DATA_ARM_EABI = {"CONV_2D": (28, 4), "DEPTHWISE_CONV_2D": (28, 4), "FULLY_CONNECTED": (5, 1),
                          "AVERAGE_POOL_2D": (40, 4), "MAX_POOL_2D": (40, 4), "ADD": (2, 1), "MUL": (1, 1),
                          "MEAN": (1, 1), "SUM": (1, 1), "SOFTMAX": (4, 4), "RESHAPE": (36, 4),
                          "CONCATENATION": (8, 4), "SVDF": (8, 4), "TRANSPOSE_CONV": (16, 4),
                          "UNIDIRECTIONAL_SEQUENCE_LSTM": (16, 4), "STRIDED_SLICE": (24, 4)}
# The struct named for each kind above, for the compiler check.
BUILTIN_STRUCTS = {"CONV_2D": "TfLiteConvParams", "DEPTHWISE_CONV_2D": "TfLiteDepthwiseConvParams",
                   "FULLY_CONNECTED": "TfLiteFullyConnectedParams", "AVERAGE_POOL_2D": "TfLitePoolParams",
                   "MAX_POOL_2D": "TfLitePoolParams", "ADD": "TfLiteAddParams", "MUL": "TfLiteMulParams",
                   "MEAN": "TfLiteReducerParams", "SUM": "TfLiteReducerParams", "SOFTMAX": "TfLiteSoftmaxParams",
                   "RESHAPE": "TfLiteReshapeParams", "CONCATENATION": "TfLiteConcatenationParams",
                   "SVDF": "TfLiteSVDFParams", "TRANSPOSE_CONV": "TfLiteTransposeConvParams",
                   "UNIDIRECTIONAL_SEQUENCE_LSTM": "TfLiteUnidirectionalSequenceLSTMParams",
                   "STRIDED_SLICE": "TfLiteStridedSliceParams"}


# The kinds whose tail and scratch this module models (every kind with kernel data or builtin options, RESHAPE
# included); :mod:`estimators.op_support` refuses any other.
MODELLED_KINDS = frozenset(_OP_DATA) | frozenset(_BUILTIN_DATA)
# Kinds whose CMSIS-NN kernel allocates differently from the reference kernel and is not modelled here (no
# emulated-target check: the firmware runs int8-in, int8-out, single-input models, and these test models are not).
CMSIS_NN_UNMODELLED = frozenset({"SVDF", "TRANSPOSE_CONV"})
# CMSIS-NN kernels whose OpData differs from the reference kernel's (sizeof on x86-64 and arm-none-eabi):
# cmsis_nn/unidirectional_sequence_lstm.cc's OpData (OpDataLSTM + cmsis_nn_lstm_params) and
# cmsis_nn/fully_connected.cc's (OpDataFullyConnected + two buffer indices, the kernel-sums pointer and three
# int32 sizes; the emulated M4 records 72 B per FULLY_CONNECTED op).
_CMSIS_NN_OP_DATA = {"UNIDIRECTIONAL_SEQUENCE_LSTM": {8: 1008, 4: 912}, "FULLY_CONNECTED": {8: 96, 4: 72}}
# cmsis-nn-mve: CMSIS-NN built for an MVE core, whose kernels keep other persistent data (FC kernel sums).
KERNELS = ("reference", "cmsis-nn", "cmsis-nn-mve")
CH_IN_BLOCK_MVE = 124  # CMSIS-NN's MVE depthwise kernel works on blocks of this many channels

_OP_DATA_BYTES = {p: {kind: size[p] for kind, (size, _) in _OP_DATA.items()} for p in _STRUCTS}
_PER_CHANNEL_KINDS = frozenset(kind for kind, (_, per_channel) in _OP_DATA.items() if per_channel)
# The C ABIs whose struct layouts differ: (pointer bytes, Arm EABI or not).
_ABIS = ((8, False), (4, False), (4, True))


def _builtin_data(kind: str, arm_eabi: bool) -> tuple[int, int]:
    """(bytes, alignment) of ``kind``'s parsed builtin options under the ABI."""
    if arm_eabi:
        return _BUILTIN_DATA_ARM_EABI.get(kind, (0, 1))
    return _BUILTIN_DATA.get(kind, 0), 4


# Per ABI, kind → (builtin data bytes, its alignment, OpData bytes, keeps per-channel data, OpData aligned) for
# kinds with any of them.
_KIND_TAIL = {(p, arm): {kind: (*_builtin_data(kind, arm), _OP_DATA_BYTES[p].get(kind, 0), kind in _PER_CHANNEL_KINDS,
                                align_up(_OP_DATA_BYTES[p].get(kind, 0), ARENA_ALIGNMENT))
                         for kind in {*_BUILTIN_DATA, *_OP_DATA}} for p, arm in _ABIS}


# per_op keys of _op_tail and per_run keys of _summed_tails, per (ABI, kernels)
_TAIL_KEYS = {(p, arm, k): f"tflm tail, {p}-byte pointers{', Arm EABI' if arm else ''}, {k} kernels"
              for p, arm in _ABIS for k in KERNELS}
_TAIL_SUM_KEYS = {key: name.replace("tflm tail", "tflm tail sums") for key, name in _TAIL_KEYS.items()}

# A run of tail allocations: (grow(used): the tail's bytes after them, given its bytes before; sizes(): their
# (bytes, alignment); names(graph)); sizes and names are listed only when a report asks for them.
_Run = tuple[Callable[[int], int], Callable[[], list[tuple[int, int]]], Callable[[Graph], list[str]]]


def _grown(used: int, alignment: int, first: int | None, aligned_sum: int) -> int:
    """The tail's bytes after allocations sharing one alignment, given its bytes ``used`` before: the first
    aligns ``used``; from there each adds exactly its aligned size (``aligned_sum`` in all)."""
    if first is None:
        return used
    return -(-(used + first) // alignment) * alignment + aligned_sum - -(-first // alignment) * alignment


def _grow_aligned(alignment: int, first: int | None, aligned_sum: int) -> Callable[[int], int]:
    """grow() of allocations sharing one alignment (:func:`_grown`)."""
    return lambda used: _grown(used, alignment, first, aligned_sum)


def _run(alignment: int, sizes: list[int], names: Callable[[Graph], list[str]]) -> _Run:
    aligned_sum = sum(-(-size // alignment) * alignment for size in sizes)
    return (_grow_aligned(alignment, sizes[0] if sizes else None, aligned_sum),
            lambda: [(size, alignment) for size in sizes], names)


def _per_op_run(alignment: int, summary: tuple[tuple, ...], tails: Callable[[], list[tuple[int, ...]]],
                k: int, names: Callable[[Graph], list[str]]) -> _Run:
    """The run of each op's non-zero ``tails()[.][k]`` bytes (OpData, column 1, or the Prepare buffers, column 2,
    each listed as many times as the op allocates them): its first size and aligned sum from ``summary``
    (:func:`_summed_tails` per op run, transposed)."""
    def sizes() -> list[tuple[int, int]]:
        return [(t[k], alignment) for t in tails() if t[k] for _ in range(t[6] if k == 2 else 1)]
    return _grow_aligned(alignment, next(filter(None, summary[k]), None), sum(summary[k + 3])), sizes, names


def _builtin_run(growths: tuple[tuple[int, ...], ...], tails: Callable[[], list[tuple[int, ...]]],
                 names: Callable[[Graph], list[str]]) -> _Run:
    """The run of every op's builtin data, each at its own alignment (at most 4): ``growths`` holds each op run's
    growth from each ``used % 4`` (:func:`_builtin_growth`)."""
    def grow(used: int) -> int:
        for growth in growths:
            used += growth[used & 3]
        return used
    return grow, lambda: [(t[0], t[3]) for t in tails() if t[0]], names


def _builtin_growth(tails: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """Bytes the builtin data of ops with ``tails`` add to a tail of ``r`` bytes, for r = 0..3 (mod 4)."""
    out = []
    for r in range(4):
        used = r
        for t in tails:
            if t[0]:
                used = -(-(used + t[0]) // t[3]) * t[3]
        out.append(used - r)
    return tuple(out)


def _fc_kernel_sums(op: OpFacts, kernels: str) -> bool:
    """Whether ``op`` is an int8 FULLY_CONNECTED whose CMSIS-NN MVE kernel keeps int32 kernel sums, one per output
    neuron, in a persistent buffer (cmsis_nn/fully_connected.cc, KERNELS_OPTIMIZED_FOR_SPEED: constant weights,
    not run as a 1x1 conv)."""
    return (kernels == "cmsis-nn-mve" and op.kind == "FULLY_CONNECTED" and op.in_dtype == "int8"
            and not _fc_as_conv_1x1(op))


def _fc_as_conv_1x1(op: OpFacts) -> bool:
    """cmsis_nn/fully_connected.cc runs an int8 FC with a >2-D output and accumulation depth % 4 == 0 as a 1x1 conv."""
    return len(op.out_shape) > 2 and op.in_shape[-1] % 4 == 0


def _prepare_buffers(op: OpFacts, kernels: str) -> tuple[int, int]:
    """(bytes, count) of the equal persistent buffers ``op``'s kernel allocates in Prepare, per-channel data aside:
    CMSIS-NN's quantized LSTM keeps 8 kernel sums of the hidden width, int32 (int8 input) or int64 (int16); its
    MVE fully connected kernel one int32 sum per output neuron."""
    if kernels != "reference" and op.kind == "UNIDIRECTIONAL_SEQUENCE_LSTM" and op.in_dtype in ("int8", "int16"):
        return (4 if op.in_dtype == "int8" else 8) * op.out_shape[-1], 8
    if _fc_kernel_sums(op, kernels):
        return 4 * op.out_shape[-1], 1
    return 0, 0


def _op_tail(op: OpFacts, pointer_bytes: int, arm_eabi: bool, kernels: str = "reference") -> tuple[int, ...]:
    """(builtin data, OpData, bytes of each Prepare buffer (per-channel multipliers and shifts, or kernel sums),
    the builtin data's alignment, OpData aligned, all Prepare buffers aligned, how many Prepare buffers) of one op."""
    sizes = _KIND_TAIL[pointer_bytes, arm_eabi].get(op.kind)
    if sizes is None:
        return 0, 0, 0, 1, 0, 0, 0
    b, b_alignment, d, channels, d_aligned = sizes
    if kernels != "reference" and (arm_eabi or op.kind in _CMSIS_NN_OP_DATA):
        d = OP_DATA_ARM_CMSIS_NN.get(op.kind, (0,))[0] if arm_eabi else _CMSIS_NN_OP_DATA[op.kind][pointer_bytes]
        d_aligned = align_up(d, ARENA_ALIGNMENT)
    c, n = (4 * op.out_channels, 2) if channels and op.out_channels else _prepare_buffers(op, kernels)
    if n == 2 and _fc_kernel_sums(op, kernels):  # per-channel multipliers, shifts, then the kernel sums: equal sizes
        n = 3
    return b, d, c, b_alignment, d_aligned, n * (-(-c // ARENA_ALIGNMENT) * ARENA_ALIGNMENT), n


def _summed_tails(ops: tuple[OpFacts, ...], pointer_bytes: int, arm_eabi: bool, kernels: str = "reference"
                  ) -> tuple:
    """:func:`_op_tail` over consecutive ``ops``: (the builtin data's :func:`_builtin_growth`, the first non-zero
    OpData and Prepare buffer sizes (0: none), 0, the sums of those two aligned)."""
    tails = op_values(ops, _TAIL_KEYS[pointer_bytes, arm_eabi, kernels],
                      lambda op: _op_tail(op, pointer_bytes, arm_eabi, kernels))
    d = c = d_sum = c_sum = 0
    for _, td, tc, _, td_aligned, tc_aligned, _ in tails:
        d, c = d or td, c or tc
        d_sum += td_aligned
        c_sum += tc_aligned
    return _builtin_growth(tails), d, c, 0, d_sum, c_sum


@functools.lru_cache(maxsize=64)
def _fixed_runs(pointer_bytes: int, arm_eabi: bool, input_channels: tuple[int, ...],
                output_channels: tuple[int, ...]) -> tuple[tuple[_Run, ...], tuple[_Run, ...]]:
    """The tail runs that depend only on the target and the graph's inputs and outputs: (the allocator's
    own objects, the interpreter's input and output tensors)."""
    s, p = _STRUCTS_ARM_EABI if arm_eabi else _STRUCTS[pointer_bytes], pointer_bytes
    head = (_run(s["base_alignment"], [s["base"]], lambda g: ["allocator objects"]),)
    io: list[_Run] = []
    for role, channels_of in (("input", input_channels), ("output", output_channels)):
        io.append(_run(ARENA_ALIGNMENT, [p * len(channels_of)], lambda g, role=role: [f"{role} tensor pointers"]))
        for i, channels in enumerate(channels_of):
            def label(g: Graph, role=role, i=i) -> str:
                return f"{role} {(g.inputs if role == 'input' else g.outputs)[i]}"
            if not channels:  # a float tensor: no quantization to copy (AllocatePersistentTfLiteTensor)
                io.append(_run(p, [s["tflite_tensor"]], lambda g, label=label: [f"{label(g)} tensor"]))
                continue
            io += [_run(p, [s["tflite_tensor"], s["affine_quant"]],
                        lambda g, label=label: [f"{label(g)} tensor", f"{label(g)} quantization"]),
                   _run(4, [4 + 4 * channels], lambda g, label=label: [f"{label(g)} zero points"])]
    return head, tuple(io)


def _tail_structs(pointer_bytes: int, kernels: str, arm_eabi: bool) -> dict[str, int]:
    """The target's struct sizes, after checking the ABI and kernels."""
    if pointer_bytes not in _STRUCTS or (pointer_bytes, arm_eabi) not in _ABIS:
        raise ValueError(f"pointer_bytes must be one of {sorted(_STRUCTS)} (Arm EABI: 4), got {pointer_bytes!r}")
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    return _STRUCTS_ARM_EABI if arm_eabi else _STRUCTS[pointer_bytes]


_COLUMNS = tuple(itemgetter(k) for k in range(6))


def _run_summaries(table: OpTable, p: int, kernels: str, arm_eabi: bool) -> list[tuple]:
    """:func:`_summed_tails` of each op run of ``table``."""
    return per_run(table, _TAIL_SUM_KEYS[p, arm_eabi, kernels], lambda ops: _summed_tails(ops, p, arm_eabi, kernels))


def _tail_runs(table: OpTable, pointer_bytes: int, n_scratch: int, kernels: str = "reference",
               arm_eabi: bool = False) -> list[_Run]:
    """:func:`tail_allocations` grouped in runs."""
    s, p = _tail_structs(pointer_bytes, kernels, arm_eabi), pointer_bytes
    head, io = _fixed_runs(p, arm_eabi, table.input_channels, table.output_channels)
    nodes = [s["node"] * len(table.ops), s["eval_tensor"] * table.tensors]
    # Builtin options are parsed for every op, then each kernel's Init allocates its OpData, then each
    # kernel's Prepare its per-channel multipliers and shifts. Builtin data are aligned to their struct's
    # alignment, the others to the arena's 16.
    summary = tuple(zip(*_run_summaries(table, p, kernels, arm_eabi))) or ((),) * 6

    def tails() -> list[tuple[int, ...]]:  # per op, for reports
        return per_op(table, _TAIL_KEYS[p, arm_eabi, kernels], lambda op: _op_tail(op, p, arm_eabi, kernels))

    def named(k: int, *what: str) -> Callable[[Graph], list[str]]:  # the ops with a tail allocation k, for reports
        return lambda g: [f"{op.name} {w}" for op, t in zip(g.ops, tails(), strict=True) if t[k]
                          for w in (what if k != 2 or t[6] == 2 else [f"kernel sum {i}" for i in range(t[6])])]

    runs = [*head, _run(p, nodes, lambda g: ["node and registration structs", "eval tensors"]),
            _builtin_run(summary[0], tails, named(0, "builtin data")),
            _per_op_run(ARENA_ALIGNMENT, summary, tails, 1, named(1, "op data")),
            _per_op_run(ARENA_ALIGNMENT, summary, tails, 2, named(2, "multipliers", "shifts"))]
    if n_scratch:
        runs.append(_run(p, [p * n_scratch], lambda g: ["scratch buffer handles"]))
    if table.variable_sizes:  # AllocateVariables, in CommitStaticMemoryPlan: after the handles
        runs.append(_run(ARENA_ALIGNMENT, list(table.variable_sizes),
                         lambda g: [f"variable {n}" for n in g.variables if g.tensors[n].nbytes]))
    runs += io
    # The host interpreter's tail ends 16-aligned; the Arm board's where its last allocation does.
    runs.append(_run(s["end_alignment"], [0], lambda g: ["end of the tail"]))
    return runs


def tail_allocations(graph: Graph, pointer_bytes: int, scratch: ScratchFn = reference_scratch,
                     arm_eabi: bool = False) -> list[tuple[str, int, int]]:
    """(what, bytes, alignment) of every tail allocation, in TFLM's order. ``arm_eabi``: the target's structs are
    laid out by arm-none-eabi-gcc (:attr:`estimators.mcu.MCU.arm_eabi`)."""
    table = table_of(graph)
    return [(name, size, alignment)
            for _, sizes, names in _tail_runs(table, pointer_bytes, scratch_count(head_scratch(table, scratch)),
                                              kernels_of(scratch), arm_eabi)
            for name, (size, alignment) in zip(names(graph), sizes(), strict=True)]


def kernels_of(scratch: ScratchFn) -> str:
    """Which kernels (:data:`KERNELS`) a scratch rule belongs to: their tails differ too."""
    return getattr(scratch, "kernels", "reference")


def scratch_count(run_scratch: list[tuple[int, tuple, tuple]]) -> int:
    """How many scratch buffers a table's :func:`head_scratch` holds (each needs a handle in the tail)."""
    return sum(map(_FIRST, run_scratch))


def tail_bytes_of(table: OpTable, pointer_bytes: int, n_scratch: int, kernels: str = "reference",
                  arm_eabi: bool = False) -> int:
    """:func:`tail_bytes` given the :func:`scratch_count` and the :func:`kernels_of` the scratch rule."""
    # The runs of :func:`_tail_runs`, in its order, without building what only reports read.
    s, p = _tail_structs(pointer_bytes, kernels, arm_eabi), pointer_bytes
    head, io = _fixed_runs(p, arm_eabi, table.input_channels, table.output_channels)
    used = head[0][0](0)
    node, eval_tensor = s["node"] * len(table.ops), s["eval_tensor"] * table.tensors
    used = _grown(used, p, node, -(-node // p) * p + -(-eval_tensor // p) * p)
    summaries = _run_summaries(table, p, kernels, arm_eabi)
    for summary in summaries:  # builtin data
        used += summary[0][used & 3]
    for k in (1, 2):  # OpData, Prepare buffers
        first = next(filter(None, map(_COLUMNS[k], summaries)), None)
        used = _grown(used, ARENA_ALIGNMENT, first, sum(map(_COLUMNS[k + 3], summaries)))
    if n_scratch:
        used = _grown(used, p, p * n_scratch, p * n_scratch)
    if table.variable_sizes:
        sizes = table.variable_sizes
        used = _grown(used, ARENA_ALIGNMENT, sizes[0], sum(-(-n // ARENA_ALIGNMENT) * ARENA_ALIGNMENT for n in sizes))
    for grow, _, _ in io:
        used = grow(used)
    return _grown(used, s["end_alignment"], 0, 0)


def tail_bytes(graph: Graph, pointer_bytes: int, scratch: ScratchFn = reference_scratch,
               arm_eabi: bool = False) -> int:
    """Persistent arena bytes: the allocations of :func:`tail_allocations`, each aligned, end to end."""
    table = table_of(graph)
    return tail_bytes_of(table, pointer_bytes, scratch_count(head_scratch(table, scratch)), kernels_of(scratch),
                         arm_eabi)


# -- CMSIS-NN scratch ------------------------------------------------------------------------------------
# The only kinds for which any of the scratch rules below (CMSIS-NN's or the reference kernels') requests bytes.
_SCRATCH_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"})


@functools.lru_cache(maxsize=None)
def cmsis_nn_scratch(isa: str) -> ScratchFn:
    """Scratch requests of TFLM's CMSIS-NN kernels on a core with ``isa`` ('dsp', 'mve' or 'generic');
    one rule object per ISA (ops remember their requests per rule)."""
    if isa not in ("dsp", "mve", "generic"):
        raise ValueError(f"kernel isa must be 'dsp', 'mve' or 'generic', got {isa!r}")

    def scratch(op: OpFacts) -> list[int]:
        kind = op.kind
        if kind == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # cmsis_nn/unidirectional_sequence_lstm.cc: 3 rows quantized
            return [op.cell_bytes] * (3 if op.in_dtype in ("int8", "int16") else 4)
        if kind not in _SCRATCH_KINDS:
            return []
        if kind == "CONV_2D":
            kh, kw = op.kernel
            if kh == kw == 1 and op.stride == (1, 1) and op.padding in ("valid", "same"):
                return []  # arm_convolve_1x1_s8_fast: no im2col
            cin = op.in_shape[-1]
            if isa == "mve":
                return [4 * math.ceil(kh * kw * cin / 16) * 16]
            return [2 * align_up(kh * kw * cin, 4) * 2]
        if kind == "DEPTHWISE_CONV_2D":
            # arm_depthwise_conv_wrapper_s8_get_buffer_size: only depth multiplier 1 asks for a buffer. MVE: 4
            # pixels' windows of a 124-channel block, int8, every kernel size (checked on the emulated M55); DSP:
            # C·Kh·Kw int16, none on the 3x3 path; none without DSP (ARMv6-M: checked on the emulated M0+).
            kh, kw = op.kernel
            if op.depth_multiplier != 1 or isa == "generic":
                return []
            if isa == "mve":
                return [4 * CH_IN_BLOCK_MVE * kh * kw]
            return [] if (kh, kw) == (3, 3) else [op.in_shape[-1] * kh * kw * 2]
        if kind == "FULLY_CONNECTED" and op.in_dtype == "int8" and _fc_as_conv_1x1(op):
            # cmsis_nn/fully_connected.cc: run as a 1x1 conv (its buffer: none from GCC builds); per-tensor
            # weights get a scratch of faked per-channel multipliers and shifts, Cout int32 each.
            return [] if op.out_channels else [8 * op.out_shape[-1]]
        if kind == "FULLY_CONNECTED" and isa == "mve" and op.in_dtype != "int8":
            return [4 * op.out_shape[-1]]  # int8: kernel sums in the tail instead (_fc_kernel_sums)
        return reference_scratch(op)

    scratch.__qualname__ = f"cmsis_nn_scratch({isa!r})"
    scratch.kernels = "cmsis-nn-mve" if isa == "mve" else "cmsis-nn"
    return scratch
