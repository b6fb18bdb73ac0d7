"""Flash: the int8 ``.tflite`` file's bytes, estimated from the IR, plus the runtime's code size.

A full-int8 flatbuffer (TFLite schema, as TensorFlow's MLIR converter writes it) holds per tensor a table
(28 B), a shape vector (4 + 4 B per dimension), a name string (4 + length + 1, padded to 4), a buffer (an
empty 4 B table, or 8 B + a 4 B length prefix + the constant's bytes), a quantization table (12 B, 16 B with a
quantized dimension, 4 B empty for int32 shape constants) with a float32 scale and an int64 zero point per
channel (4 + 4 c and 4 + 8 c B, the latter 8-aligned), and a 4 B offset in each of the tensors and buffers
vectors. Per op it holds a table (24 B; 20 B for the op code at index 0; 16 B without options), its input
and output index vectors (4 + 4 B per index), an options table (4 B + 4 B per field set) and a 4 B offset;
per op kind an operator code (20 B). The converter stores a constant that equal ops share once (the paddings
of equal PADs, the MEAN axes, a broadcast scalar) and drops a RESHAPE that feeds a FULLY_CONNECTED (which
flattens its input itself). Constant tensors are named ``tfl.pseudo_qconst``, ``tfl.pseudo_qconst1``, ...
(quantized) and ``arith.constant``, ... (int32 shapes).

:func:`flash_terms` counts all of that from the graph's op facts. The rest is fitted on real files by
``benchmarks/flash_calibration.py`` into ``data/flash_model.yaml``: the names of the ops' outputs (the
converter joins the names of the TensorFlow layers fused into a tensor, ``model/tf.nn.relu6_3/Relu6;
model/tf.math.add_5/Add;model/tf.nn.convolution_2/convolution;Const_41``: per op kind and fused activation
a base length and the layer types it uses, each numbered along the graph), the zero-point vectors'
alignment per quantized constant, vtables per op kind, and a fixed part (header, signature, metadata).

The runtime's code (:func:`runtime_code`) is that of exactly the op kinds the model uses, on its core, from
``data/runtime_code_size.yaml``: for ``tflm``, measured in linked TFLM + CMSIS-NN firmware by
``benchmarks/runtime_code_size.py``, as a base (interpreter, allocator, planner and the C library they reach)
plus groups of code, each linked by a set of op kinds (one op's own kernel, or code several share: CMSIS-NN's
matrix products, soft-float helpers); a model's code is the base plus every group that holds one of its ops.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import yaml

from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.table import OpFacts, OpTable, op_values, per_run, table_of

DATA_DIR = Path(__file__).resolve().parent / "data"
FLASH_MODEL = DATA_DIR / "flash_model.yaml"
RUNTIME_CODE = DATA_DIR / "runtime_code_size.yaml"


@dataclasses.dataclass(frozen=True)
class FlashEstimate:
    model_bytes: int
    runtime_bytes: int
    total_bytes: int
    model_source: str = "estimate"  # "file": model_bytes is a real model file's size
    runtime_source: str = ""  # where runtime_bytes comes from (a borrowed core's build is named)


def with_model_file(flash: FlashEstimate, file_bytes: int) -> FlashEstimate:
    """``flash`` with the model's bytes taken from a real model file of ``file_bytes`` (not estimated)."""
    return FlashEstimate(file_bytes, flash.runtime_bytes, file_bytes + flash.runtime_bytes, "file",
                         flash.runtime_source)


@functools.lru_cache(maxsize=4)
def _yaml(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


# Flatbuffer object sizes (bytes) of the TFLite schema as the converter writes them (module docstring).
TENSOR_BYTES = 4 + 28 + 4 + 4        # offset in the tensors vector, table, offset in the buffers vector, empty buffer
CONST_BUFFER_BYTES = 4 + 4           # a buffer with data: 4 more in its table, the data vector's length prefix
QUANT_TABLE_BYTES, QUANT_DIM_BYTES, EMPTY_QUANT_BYTES = 12, 4, 4
QUANT_VECTOR_BYTES = 4 + 4           # length prefixes of the scale and zero-point vectors
QUANT_CHANNEL_BYTES = 12             # float32 scale + int64 zero point
OP_BYTES = 4 + 24                    # offset in the operators vector, table (with options)
NO_OPTIONS_OP_BYTES = 4 + 16         # ... without options
OP_CODE0_SAVING = 4                  # an op of the kind at op code index 0 leaves the index out
OPTIONS_FIELD_BYTES = 4              # each field an options table sets (+ 4 B for the table's vtable offset)
OPERATOR_CODE_BYTES = 20             # offset in the operator codes vector + table, per op kind
# Options fields an op sets always (beyond those set by a 'valid' padding or a fused activation); kinds absent
# here write an empty options table, those in NO_OPTIONS none.
_OPTION_FIELDS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 3, "AVERAGE_POOL_2D": 4, "MAX_POOL_2D": 4, "SOFTMAX": 1,
                  "CONCATENATION": 1, "TRANSPOSE_CONV": 2}
_NO_OPTIONS = frozenset({"HARD_SWISH", "LOGISTIC", "TANH", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE"})
_SHAPE_CONST_KINDS = frozenset({"PAD", "MEAN", "RESHAPE", "SUM", "REDUCE_MAX"})
_WEIGHTED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})
_BINARY = frozenset({"ADD", "MUL", "SUB"})


@dataclasses.dataclass(frozen=True)
class _OpLayout:
    """What one op puts in the file: ``bytes`` counted exactly (but names and constant data), its own
    constants' data bytes and quantization channels (``channels`` with its output's), the name pattern of its
    output, its own constant tensors (``qconsts`` quantized, ``shape_consts`` int32 shapes), and a constant it
    shares with equal ops: its key (None: none), whether it is quantized, and its full cost
    (``shared_bytes``, ``shared_data``, ``shared_channels``)."""

    bytes: int
    const_bytes: int
    channels: int
    pattern: str
    qconsts: int
    shape_consts: int
    shared: tuple | None = None
    shared_quantized: bool = False
    shared_bytes: int = 0
    shared_data: int = 0
    shared_channels: int = 0


def _tensor_bytes(rank: int, channels: int, quant_dim: bool = False, const: bool = False) -> int:
    """A tensor's bytes but its name, its constant data and its scales and zero points (``channels`` 0: an
    unquantized int32 constant)."""
    quant = (EMPTY_QUANT_BYTES if channels == 0 else QUANT_TABLE_BYTES + QUANT_DIM_BYTES * quant_dim
             + QUANT_VECTOR_BYTES)
    return TENSOR_BYTES + 4 + 4 * rank + quant + CONST_BUFFER_BYTES * const


def _options_fields(f: OpFacts) -> int:
    """Fields an op's options table sets (TFLite leaves defaults out)."""
    kind = f.kind
    fields = _OPTION_FIELDS.get(kind, 0) + (f.activation is not None)
    fields += kind in _OPTION_FIELDS and kind != "SOFTMAX" and f.padding == "valid"
    fields += kind in ("MEAN", "SUM", "REDUCE_MAX") and len(f.out_shape) == len(f.in_shape)  # keep_dims
    return fields


def op_layout(f: OpFacts) -> _OpLayout:
    """The file objects of the op with facts ``f``: the op, its output tensor and its constant tensors."""
    kind, n_in = f.kind, 1
    size, data, channels, qconsts, shape_consts = _tensor_bytes(len(f.out_shape), 1), 0, 1, 0, 0
    shared, shared_quantized, shared_bytes, shared_data, shared_channels = None, False, 0, 0, 0
    if kind in _WEIGHTED:  # weight and bias, quantized per output channel (or per tensor: out_channels 0)
        c, bias = f.out_channels or 1, f.out_shape[-1]
        size += (_tensor_bytes(2 if kind == "FULLY_CONNECTED" else 4, c, kind == "DEPTHWISE_CONV_2D", True)
                 + _tensor_bytes(1, c, False, True))
        data, channels, n_in, qconsts = f.params + 3 * bias, 1 + 2 * c, 3, 2  # int8 weights, int32 biases
    elif kind in _SHAPE_CONST_KINDS:
        n_in = 2
        if kind == "PAD":  # its paddings, as far as the shapes tell
            rank, value = 2, tuple(o - i for o, i in zip(f.out_shape, f.in_shape))
        else:
            rank, value = 1, (f.out_shape if kind == "RESHAPE" else ())
        shared, shared_data = (kind, f.aux_numel, value), 4 * f.aux_numel
        shared_bytes = _tensor_bytes(rank, 0, False, True)
    elif kind in _BINARY:
        n_in = 2
        if f.aux_numel == 1 < f.out_numel:  # times / plus a broadcast scalar constant
            shared, shared_quantized = (kind, "scalar"), True
            shared_bytes, shared_data, shared_channels = _tensor_bytes(0, 1, False, True), 1, 1
    if kind in _NO_OPTIONS:
        size += NO_OPTIONS_OP_BYTES
    else:
        size += OP_BYTES + 4 + OPTIONS_FIELD_BYTES * _options_fields(f)
    size += 4 + 4 * n_in + 4 + 4  # input and output index vectors
    pattern = kind if f.activation is None else f"{kind}/{f.activation}"
    return _OpLayout(size, data, channels, pattern, qconsts, shape_consts, shared, shared_quantized, shared_bytes,
                     shared_data, shared_channels)


def _layout_sums(x: _OpLayout) -> tuple[int, ...]:
    """What one op's layout adds to its run's :attr:`_RunSums.sums` (in that order)."""
    return (x.bytes, x.const_bytes, x.channels, x.qconsts, x.shape_consts, 1,
            1 + x.qconsts + x.shape_consts + (x.shared is not None), x.const_bytes + x.shared_data,
            x.channels + x.shared_channels)


def _op_sums(op: OpFacts) -> tuple[int, ...]:
    return _layout_sums(op_values((op,), op_layout, op_layout)[0])


# Op kinds and shared constants as bits of one int per run: a graph's sets are the OR of its runs' masks.
_BITS: dict[Any, int] = {}
_SHARED: list[_OpLayout] = []  # bit index → a layout holding the shared constant of that key


def _bit(key: Any, layout: _OpLayout | None = None) -> int:
    bit = _BITS.get(key)
    if bit is None:
        bit = _BITS[key] = len(_BITS)
        _SHARED.append(layout)
    return 1 << bit


# Counts (non-negative ints) packed in one int, a field of FIELD_BITS bits each: a graph's counts are the plain
# sum of its runs' packed ints (one addition per run, however many counts).
FIELD_BITS = 64
_FIELD = (1 << FIELD_BITS) - 1
_PATTERNS: dict[str, int] = {}  # output name pattern → its field in packed pattern counts


def _packed(counts: Iterable[int]) -> int:
    return sum(n << (FIELD_BITS * i) for i, n in enumerate(counts))


def _unpacked(packed: int, n: int) -> list[int]:
    return [packed >> (FIELD_BITS * i) & _FIELD for i in range(n)]


def _pattern_unit(pattern: str) -> int:
    """One op of ``pattern`` in packed pattern counts."""
    i = _PATTERNS.get(pattern)
    if i is None:
        i = _PATTERNS[pattern] = len(_PATTERNS)
    return 1 << (FIELD_BITS * i)


class _RunSums:
    """A run's op layouts summed. ``sums``: bytes, constant bytes, channels, quantized constants, shape
    constants, ops, and the ops' tensors, constant bytes and channels with every shared copy (``packed``:
    the same, :func:`_packed`); ``mask``: its op kinds and shared constants as bits (:func:`_bit`); ``kinds``:
    op kind → ops; ``patterns``: output name pattern → ops (``pattern_counts``: packed, :func:`_pattern_unit`);
    ``dropped``: the RESHAPEs in it that feed a FULLY_CONNECTED; ``first`` / ``last``: its first and last op
    (kind, layout)."""

    __slots__ = ("sums", "packed", "mask", "kinds", "patterns", "pattern_counts", "dropped", "first", "last")

    def __init__(self, ops: tuple[OpFacts, ...]) -> None:
        layouts = op_values(ops, op_layout, op_layout)
        self.dropped = tuple(layouts[i] for i in range(len(ops) - 1)
                             if ops[i].kind == "RESHAPE" and ops[i + 1].kind == "FULLY_CONNECTED")
        self.sums = tuple(map(sum, zip(*op_values(ops, _layout_sums, _op_sums))))
        self.packed = _packed(self.sums)
        self.kinds = dict(Counter(op.kind for op in ops))
        self.patterns = dict(Counter(x.pattern for x in layouts))
        self.pattern_counts = sum(n * _pattern_unit(p) for p, n in self.patterns.items())
        self.mask = 0
        for kind in self.kinds:
            self.mask |= _bit(kind)
        for x in layouts:
            if x.shared is not None:
                self.mask |= _bit(x.shared, x)
        self.first, self.last = (ops[0].kind, layouts[0]), (ops[-1].kind, layouts[-1])


@functools.lru_cache(maxsize=4096)
def _name_bytes(n: int, base: int) -> int:
    """String bytes of ``n`` names ``base`` characters long, the i-th (i ≥ 1) suffixed with ``i`` (the
    converter's ``tfl.pseudo_qconst``, ``tfl.pseudo_qconst1``, ...): 4 + length + 1, padded to 4."""
    total, lo = 0, 0
    for digits in range(12):
        hi = 1 if digits == 0 else 10 ** digits
        if n <= lo:
            break
        total += (min(n, hi) - lo) * (-(-(base + digits + 5) // 4) * 4)
        lo = hi
    return total


QCONST_NAME, SHAPE_CONST_NAME = len("tfl.pseudo_qconst"), len("arith.constant")
INPUT_NAME, OUTPUT_NAME = len("serving_default_input:0"), len("PartitionedCall:0")


def _dropped(runs: list[_RunSums]) -> list[_OpLayout]:
    """The RESHAPEs that feed a FULLY_CONNECTED, inside runs and across them."""
    dropped = [x for r in runs if r.dropped for x in r.dropped]
    return dropped + [a.last[1] for a, b in zip(runs, runs[1:])
                      if a.last[0] == "RESHAPE" and b.first[0] == "FULLY_CONNECTED"]


def flash_terms(graph: Graph, table: OpTable | None = None) -> dict[str, Any]:
    """What the file-size model prices, counted from ``graph``'s op facts (``table``: the graph's
    :func:`~estimators.table.table_of`, when the caller has it): ``const_bytes`` and ``quant_channels`` (the
    constants' data and quantization channels as stored), ``struct_bytes`` (every object counted exactly but
    names), ``name_bytes`` (the constants', input's and output's names), ``quantized_consts``, ``op_kinds``,
    ``tensors`` and ``other_tensors`` (tensors of op kinds not modelled, priced per tensor); for the op output
    names (:func:`output_name_bytes`, :func:`output_patterns`): ``runs`` (the table's runs, summed) and
    ``named`` (the layouts of ops whose output is not named after its layers: the last op's, the graph output,
    and dropped ops'); ``name_counts``: the patterns of the other ops' output names, counted (packed,
    :func:`_pattern_unit`); ``mask``: the graph's op kinds and shared constants as bits."""
    t = table or table_of(graph)
    if not t.ops:
        raise ValueError(f"graph {t.name!r} has no ops: nothing to write to a .tflite file")
    runs = per_run(t, _RunSums, _RunSums)
    r_bytes, r_const, r_channels, r_qconsts, r_shape, r_ops, m_tensors, m_const, m_channels = _unpacked(
        sum([r.packed for r in runs]), 9)
    first = t.ops[0]
    mask = code0_ops = 0
    for r in runs:
        mask |= r.mask
        code0_ops += r.kinds.get(first.kind, 0)
    # Equal ops share one constant. The converter drops a RESHAPE that feeds a FULLY_CONNECTED (which flattens
    # its input itself): its op, output and shape constant (unless a RESHAPE it keeps shares it).
    dropped = _dropped(runs) if "RESHAPE" in _BITS and mask >> _BITS["RESHAPE"] & 1 else []
    kinds, unique = _mask_sets(mask)
    if dropped:
        kept = Counter(x.shared for x in _layouts(t)) - Counter(x.shared for x in dropped)
        unique = _SharedSums(tuple(x for x in unique.layouts if kept[x.shared] > 0))
    in_channels = t.input_channels[0] if t.input_channels else 1
    struct = (r_bytes - sum(x.bytes for x in dropped) + unique.bytes + OPERATOR_CODE_BYTES * kinds
              + _tensor_bytes(len(first.in_shape), in_channels) - OP_CODE0_SAVING * code0_ops)
    const_bytes = r_const + unique.data
    channels = in_channels + r_channels - sum(x.channels for x in dropped) + unique.channels
    qconsts = r_qconsts + unique.quantized
    shape_consts = r_shape + len(unique.layouts) - unique.quantized
    # What op kinds the layout does not model add (recurrent state, a transpose conv's output shape...):
    # the graph's tensors, constant bytes and channels beyond those of its modelled ops, all copies counted.
    other_tensors = max(0, t.tensors - 1 - m_tensors)
    const_bytes += max(0, t.const_bytes - m_const)
    channels += max(0, t.quant_channels - in_channels - m_channels)
    named = [runs[-1].last[1], *dropped]
    return {"const_bytes": const_bytes, "quant_channels": channels, "struct_bytes": struct,
            "name_bytes": (_name_bytes(qconsts, QCONST_NAME) + _name_bytes(shape_consts, SHAPE_CONST_NAME)
                           + _name_bytes(1, INPUT_NAME) + _name_bytes(1, OUTPUT_NAME)),
            "named": named, "quantized_consts": qconsts, "op_kinds": kinds,
            "tensors": 1 + r_ops - len(dropped) + qconsts + shape_consts + other_tensors,
            "other_tensors": other_tensors, "runs": runs, "mask": mask,
            "name_counts": sum([r.pattern_counts for r in runs]) - sum([_pattern_unit(x.pattern) for x in named])}


class _SharedSums:
    """Layouts of shared constants (one each) and their full cost summed: ``bytes``, ``data``, ``channels``, and
    how many are ``quantized``."""

    __slots__ = ("layouts", "bytes", "data", "channels", "quantized")

    def __init__(self, layouts: tuple[_OpLayout, ...]) -> None:
        self.layouts = layouts
        self.bytes = sum(x.shared_bytes for x in layouts)
        self.data = sum(x.shared_data for x in layouts)
        self.channels = sum(x.shared_channels for x in layouts)
        self.quantized = sum(x.shared_quantized for x in layouts)


@functools.lru_cache(maxsize=4096)
def _mask_sets(mask: int) -> tuple[int, _SharedSums]:
    """The number of op kinds in ``mask`` and a layout of each shared constant in it, summed."""
    bits = [i for i in range(mask.bit_length()) if mask >> i & 1]
    return (sum(_SHARED[i] is None for i in bits),
            _SharedSums(tuple(_SHARED[i] for i in bits if _SHARED[i] is not None)))


def _layouts(t: OpTable) -> tuple[_OpLayout, ...]:
    return op_values(t.ops, op_layout, op_layout)


def output_patterns(terms: dict[str, Any]) -> dict[str, int]:
    """Op output name pattern → ops of :func:`flash_terms`' graph (the last op's output and dropped ops aside)."""
    patterns = Counter()
    for r in terms["runs"]:
        patterns.update(r.patterns)
    patterns.subtract(x.pattern for x in terms["named"])
    return {p: n for p, n in patterns.items() if n > 0}


def tflite_bytes(graph: Graph, exporter: str | None = None, table: OpTable | None = None) -> int:
    """Estimated size of ``graph`` as a full-int8 ``.tflite`` written by ``exporter`` (default: the project's)."""
    return round(priced_bytes(flash_terms(graph, table), exporter_coefficients(exporter)))


@functools.lru_cache(maxsize=8)
def exporter_coefficients(exporter: str | None = None) -> dict[str, Any]:
    """The fitted coefficients of ``exporter`` (default: the project's) in ``data/flash_model.yaml``."""
    model = _yaml(FLASH_MODEL)
    exporter = exporter or model["default_exporter"]
    if exporter not in model["exporters"]:
        raise ValueError(f"unknown exporter {exporter!r}; calibrated: {', '.join(model['exporters'])}")
    return model["exporters"][exporter]


@functools.lru_cache(maxsize=4096)
def mean_suffix_bytes(n: int) -> float:
    """Mean length of the suffix ``_k`` of names counted k = 0 .. n − 1 (none for k = 0), as TensorFlow numbers
    the layers of one type in a model (``tf.nn.relu``, ``tf.nn.relu_1``, ...)."""
    if n <= 1:
        return 0.0
    total, lo = 0, 1
    for digits in range(1, 12):
        hi = 10 ** digits
        total += (min(n, hi) - lo) * (1 + digits)
        if n <= hi:
            break
        lo = hi
    return total / n


# id(coef) → (coef, kept so that its id is not reused; pattern → _pattern_names; packed name counts →
# output_name_bytes). Coefficients must not change once priced.
_COEF_MEMOS: dict[int, tuple[dict[str, Any], dict[str, tuple[float, ...]], dict[int, float]]] = {}


def _coef_memos(coef: dict[str, Any]) -> tuple[dict[str, tuple[float, ...]], dict[int, float]]:
    memos = _COEF_MEMOS.get(id(coef))
    if memos is None:
        memos = _COEF_MEMOS[id(coef)] = (coef, {}, {})
    return memos[1], memos[2]


def _pattern_names(pattern: str, coef: dict[str, Any]) -> tuple[float, ...]:
    """One op output name of ``pattern``: its bytes but the numeric suffixes (base length, the Keras model
    prefix's number per part under it, 4 + 1 + padding of a string), then its uses of each layer type
    (in the order of ``coef["counter_span"]``); remembered per pattern and coefficients."""
    memo = _coef_memos(coef)[0]
    names = memo.get(pattern)
    if names is None:
        e = coef["output_names"].get(pattern, coef["default_output_name"])
        names = memo[pattern] = (
            e["base"] + e["model_parts"] * coef["model_prefix_bytes"] + 5 + coef["string_padding_bytes"],
            *(e["uses"].get(t, 0.0) for t in coef["counter_span"]))
    return names


def output_name_bytes(terms: dict[str, Any], coef: dict[str, Any]) -> float:
    """Bytes of the op outputs' name strings: per op its pattern's bytes but the numeric suffixes; per layer
    type (``tf.nn.relu``, ``Const``, ...) the numeric suffixes of its n uses, numbered over span × n
    (remembered per pattern counts: many graphs share them)."""
    cache = _coef_memos(coef)[1]
    counts = terms["name_counts"]
    bytes_ = cache.get(counts)
    if bytes_ is None:
        if len(cache) > 65536:
            cache.clear()
        bytes_ = cache[counts] = _counted_name_bytes(counts, coef)
    return bytes_


def _counted_name_bytes(counts: int, coef: dict[str, Any]) -> float:
    spans = coef["counter_span"].values()
    rows = [tuple(n * v for v in _pattern_names(p, coef))
            for p, n in zip(_PATTERNS, _unpacked(counts, len(_PATTERNS))) if n]
    totals = list(map(sum, zip(*rows))) or [0.0] * (1 + len(spans))
    return totals[0] + sum(n * mean_suffix_bytes(round(s * n)) for s, n in zip(spans, totals[1:]) if n > 0)


def priced_bytes(terms: dict[str, Any], coef: dict[str, Any]) -> float:
    """File bytes of ``terms`` (:func:`flash_terms`) with an exporter's fitted coefficients ``coef``."""
    return (terms["const_bytes"] + QUANT_CHANNEL_BYTES * terms["quant_channels"] + terms["struct_bytes"]
            + terms["name_bytes"] + output_name_bytes(terms, coef)
            + coef["per_quantized_const_bytes"] * terms["quantized_consts"]
            + coef["per_op_kind_bytes"] * terms["op_kinds"]
            + coef["other_tensor_bytes"] * terms["other_tensors"] + coef["fixed_bytes"])


@dataclasses.dataclass(frozen=True)
class RuntimeCode:
    bytes: int
    source: str  # the build measured (a borrowed one says so) or the published figure's source


def runtime_code(runtime: str, core: str, ops: Iterable[str]) -> RuntimeCode:
    """Flash taken by ``runtime``'s code (interpreter and the kernels of the op kinds ``ops``) on ``core``."""
    return _runtime_code(runtime, str(core), frozenset(ops))


def runtime_code_bytes(runtime: str, core: str, ops: Iterable[str]) -> int:
    return runtime_code(runtime, core, ops).bytes


def _family(core: str) -> tuple[str, str | None]:
    """(family, its CMSIS-NN class) of an MCU core string; ('', None) for a core no family matches (a host)."""
    from estimators.latency import core_families, core_family

    try:
        family = core_family(core)
    except ValueError:
        return "", None
    return family, core_families()["families"][family]["isa"]


@functools.lru_cache(maxsize=1024)
def _runtime_code(runtime: str, core: str, ops: frozenset[str]) -> RuntimeCode:
    runtimes = _yaml(RUNTIME_CODE)["runtimes"]
    if runtime not in runtimes:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(runtimes)}")
    spec = runtimes[runtime]
    if "same_as" in spec:
        measured = _runtime_code(spec["same_as"], core, ops)
        return RuntimeCode(measured.bytes, f"{spec['source']} ({measured.source})")
    if "cores" not in spec:
        return RuntimeCode(int(spec["code_bytes"]), spec["source"])
    family, isa = _family(core)
    if family in spec["cores"]:
        build, note = family, ""
    else:
        build = spec["borrow"][isa or "other"]
        build = build if build in spec["cores"] else next(iter(spec["cores"]))
        note = f"; no {runtime} build for {core}: the {build} build's figures"
    entry = spec["cores"][build]
    groups = [g for g in entry["groups"] if not ops.isdisjoint(g["ops"])]
    unknown = sorted(ops - set(entry["ops"]))
    if unknown:
        note += f"; no measured code for {', '.join(unknown)}"
    return RuntimeCode(entry["base_bytes"] + sum(g["bytes"] for g in groups),
                       f"{runtime} {build} build, TFLM {entry['tflm_commit'][:7]}, CMSIS-NN "
                       f"{entry['cmsis_nn_commit'][:7]}, {entry['compiler']}{note}")


@functools.lru_cache(maxsize=4096)
def _mask_code(runtime: str, core: str, mask: int) -> RuntimeCode:
    """:func:`runtime_code` of the op kinds in a :func:`flash_terms` ``mask`` (a search meets the same sets often)."""
    return runtime_code(runtime, core, frozenset(k for k, bit in _BITS.items() if type(k) is str and mask >> bit & 1))


def estimate_flash(graph: Graph, runtime: str, mcu: MCU, table: OpTable | None = None) -> FlashEstimate:
    """Model file bytes + the code of ``runtime`` for exactly the op kinds of ``graph``, on ``mcu``'s core."""
    terms = flash_terms(graph, table)
    code = _mask_code(runtime, str(mcu.core), terms["mask"])
    model = round(priced_bytes(terms, exporter_coefficients()))  # tflite_bytes
    return FlashEstimate(model, code.bytes, model + code.bytes, runtime_source=code.source)
