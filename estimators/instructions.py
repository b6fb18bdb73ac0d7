"""Executed instructions per op of TFLite Micro + CMSIS-NN, from a per-kernel linear model fitted in an emulator.

Each op maps to the kernel variant CMSIS-NN's wrappers pick for it (``CONV_2D/1x1_fast``, ``CONV_2D/kxk``,
``DEPTHWISE_CONV_2D/3x3``, ...) and to a few counts that kernel's loops run over (MACs, the MACs that land
inside the input — padding taps are skipped or zero-filled —, output elements, output pixels, channels).
Instructions are the dot product of those counts with the variant's fitted coefficients; one Invoke adds
``INVOKE`` (a constant plus a cost per op). One model per instruction class (the kernels CMSIS-NN compiles for
that ISA): DSP (Cortex-M4/M7/M33, ``data/instruction_model.yaml``), ARMv6-M (M0/M0+, ``..._armv6m.yaml``) and
MVE (M55/M85, ``..._mve.yaml``), each written by ``benchmarks/instruction_model.py`` from emulated exported archs,
with the TFLM / CMSIS-NN commits, compiler and flags it holds for. A core whose own build departs from its class's
(the same kernels, scheduled and selected by GCC for its ``-mcpu``: the Cortex-M7 and M33) has a model of its own,
same form, fitted on its own firmware (``..._cortex-m7.yaml``, ``..._cortex-m33.yaml``), used where it ships.
Counts include TFLM's profiler hook around each op (about 20 instructions), as the firmware that measured them does.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from pathlib import Path
from typing import Any, ClassVar

import yaml

from estimators.ir import Graph
from estimators.mcu import MCU
from estimators.table import OpFacts, OpTable, op_values, per_op, per_run, table_of
from estimators.tflm_memory import CH_IN_BLOCK_MVE

DATA_DIR = Path(__file__).resolve().parent / "data"
MODEL_YAML = DATA_DIR / "instruction_model.yaml"
# One model per instruction class (``MCU.instruction_class``): the kernels CMSIS-NN compiles for that ISA.
MODEL_FILES = {"dsp": MODEL_YAML, "armv6m": DATA_DIR / "instruction_model_armv6m.yaml",
               "mve": DATA_DIR / "instruction_model_mve.yaml"}
# Per core (``MCU.core``), where its own build's counts depart from its class's model: used when the file ships.
CORE_MODEL_FILES = {core: DATA_DIR / f"instruction_model_{core}.yaml" for core in ("cortex-m7", "cortex-m33")}
ROW_FIELDS = ("kind", "in_shape", "out_shape", "out_numel", "macs", "params", "out_channels", "in_dtype",
              "aux_numel", "kernel", "stride", "padding", "depth_multiplier")
ELEMENTWISE = "OTHER"  # op kinds without a variant of their own
WINDOWED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D"})


def _pad_before(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) along one axis, as TFLite computes them."""
    if padding == "same":
        out = -(-size // stride)
        return out, max((out - 1) * stride + kernel - size, 0) // 2
    return (size - kernel) // stride + 1, 0


def _inside_taps(size: int, kernel: int, stride: int, padding: str) -> int:
    """Window taps that land inside the input along one axis, summed over the output positions."""
    out, before = _pad_before(size, kernel, stride, padding)
    taps = out * kernel
    o = 0
    while o < out and o * stride < before:  # windows that start in the padding before the input
        taps -= before - o * stride
        o += 1
    o = out - 1
    while o >= 0 and o * stride - before + kernel > size:  # ... and those that end in the padding after it
        taps -= o * stride - before + kernel - size
        o -= 1
    return taps


def _window(op: OpFacts) -> tuple[int, int, int, int]:
    """(inside taps summed over output pixels, output pixels, padding before along h, along w) of a windowed op."""
    _, h, w, _ = op.in_shape if len(op.in_shape) == 4 else (1, 1, 1, 1)
    (kh, kw), (sh, sw) = op.kernel, op.stride
    taps = _inside_taps(h, kh, sh, op.padding) * _inside_taps(w, kw, sw, op.padding)
    oh, ph = _pad_before(h, kh, sh, op.padding)
    ow, pw = _pad_before(w, kw, sw, op.padding)
    return taps, oh * ow, ph, pw


def _mat_mult(m: int, n: int, k: int) -> list[int]:
    """Loop counts of CMSIS-NN's DSP ``arm_nn_mat_mult_nt_t_s8`` (m × k input rows, n × k weight rows): 2 × 2
    output tiles, their 16-, 4- and 1-wide column steps (and whether each loop runs), the odd input row's and odd
    weight row's remainders."""
    pairs, odd_m, odd_n = n // 2, m % 2, n % 2
    q16, q4, r1 = k // 16, (k % 16) // 4, k % 4
    tiles = pairs * (m // 2)
    return [pairs, pairs * k, tiles, tiles * q16, tiles * q4, tiles * r1, tiles * (q16 > 0), tiles * (q4 > 0),
            tiles * (r1 > 0), pairs * odd_m, pairs * odd_m * q16,
            pairs * odd_m * q4, pairs * odd_m * r1, odd_n * m, odd_n * m * k]


_MVE_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})  # kernels of their own on MVE


def _vectors(n: int) -> int:
    """Tail-predicated 16-byte MVE loop steps over ``n`` int8 values."""
    return -(-n // 16)


def _mve_mat_mult(m: int, n: int, k: int) -> list[int]:
    """Loop counts of CMSIS-NN's MVE ``arm_nn_mat_mult_nt_t_s8`` (m × k input rows, n × k weight rows): 4 input
    rows × 1 weight row per step over ``k`` in 16-byte vectors; the odd input rows one by one, their outputs
    requantised 4 at a time and the weight rows left over one by one."""
    v, quads, rest = _vectors(k), m // 4, m % 4
    return [quads, quads * n, quads * n * v, rest, rest * n, rest * n * v, rest * (n // 4), rest * (n % 4)]


def _mve_features(op: OpFacts) -> tuple[str, list[float]]:
    """Conv, depthwise and fully connected kernels of CMSIS-NN on an MVE (Helium) core."""
    kind = op.kind
    if kind == "FULLY_CONNECTED":  # arm_nn_vec_mat_mult_t_s8: 4 output neurons per step, k in 16-byte vectors
        units = op.out_shape[-1]
        k = op.macs // max(units, 1)
        v = _vectors(k)
        return kind, [1.0, units // 4, (units // 4) * v, units % 4, (units % 4) * v, k]
    taps, pixels, ph, pw = _window(op)
    kh, kw = op.kernel
    if kind == "CONV_2D":
        cin, cout = op.in_shape[-1], op.out_channels
        if op.kernel == (1, 1) and ph == pw == 0:
            if op.stride == (1, 1):  # arm_convolve_1x1_s8_fast: one matrix product over every pixel
                return "CONV_2D/1x1_fast", [1.0, *_mve_mat_mult(pixels, cout, cin)]
            oh = op.out_shape[1]  # arm_convolve_1x1_s8: one matrix product per output row
            return "CONV_2D/1x1", [1.0, oh, *(oh * v for v in _mve_mat_mult(pixels // oh, cout, cin))]
        # arm_convolve_s8: per pixel, copy the window's taps (fill padding) in 16-byte vectors; per 4 pixels, a
        # matrix product of 4 rows; the pixels left over in one last product.
        vc, pad_taps = _vectors(cin), pixels * kh * kw - taps
        quads, rest = pixels // 4, pixels % 4
        k = kh * kw * cin
        mm = [a + b for a, b in zip((quads * v for v in _mve_mat_mult(4, cout, k)), _mve_mat_mult(rest, cout, k))]
        return "CONV_2D/kxk", [1.0, pixels, pixels * kh, taps, taps * vc, pad_taps, pad_taps * vc, quads, *mm]
    # DEPTHWISE_CONV_2D, arm_depthwise_conv_s8_opt (depth multiplier 1, every kernel size), per block of up to
    # 124 channels: per pixel, the window's taps copied in 16-byte vectors; per 4 pixels, 4 channels at a time
    # over the taps; the pixels left over likewise one by one. Other depth multipliers: arm_depthwise_conv_s8.
    c = op.out_channels
    if op.depth_multiplier != 1:
        oh = _pad_before(op.in_shape[1], kh, op.stride[0], op.padding)[0]
        return "DEPTHWISE_CONV_2D/generic", [1.0, op.macs, taps * c, op.out_numel, pixels, oh * c, c]
    kk, quads, rest = kh * kw, pixels // 4, pixels % 4
    pad_taps, oh = pixels * kk - taps, op.out_shape[1]
    x = [1.0] + [0] * 14
    for active in [CH_IN_BLOCK_MVE] * (c // CH_IN_BLOCK_MVE) + ([c % CH_IN_BLOCK_MVE] if c % CH_IN_BLOCK_MVE else []):
        v, groups = _vectors(active), -(-active // 4)
        for i, val in enumerate((1, oh, pixels, pixels * kh, taps, pad_taps, taps * v, pad_taps * v, quads,
                                 quads * groups, quads * groups * kk, rest, rest * groups, rest * groups * kk)):
            x[1 + i] += val
    return "DEPTHWISE_CONV_2D/opt", x


def op_features(op: OpFacts, isa: str = "dsp") -> tuple[str, list[float]]:
    """The kernel variant ``op`` runs on an ``isa`` core ('dsp', 'armv6m', 'mve') and the counts its instructions
    are linear in (order = coefficients'). ARMv6-M runs the DSP class's loop structure in plain C, except that
    CMSIS-NN's optimised depthwise kernel falls back to the generic one there; MVE has kernels of its own."""
    if isa == "mve" and op.kind in _MVE_KINDS:
        return _mve_features(op)
    kind = op.kind
    if kind == "CONV_2D":
        taps, pixels, ph, pw = _window(op)
        cin, cout = op.in_shape[-1], op.out_channels
        if op.kernel == (1, 1) and ph == pw == 0:
            if op.stride == (1, 1):  # arm_convolve_1x1_s8_fast: one matrix product over every pixel
                return "CONV_2D/1x1_fast", [1.0, *_mat_mult(pixels, cout, cin)]
            oh = op.out_shape[1]  # arm_convolve_1x1_s8: one matrix product per output row
            return "CONV_2D/1x1", [1.0, oh, *(oh * v for v in _mat_mult(pixels // oh, cout, cin)[:6])]
        # arm_convolve_s8: per pixel, copy the window (fill padding) and widen it to int16; per two pixels, a
        # kernel of 2 × 2 outputs stepping 4 columns; the odd pixel's and odd channel's remainders.
        kh, kw = op.kernel
        k = kh * kw * cin
        col_pairs, pairs, odd_p, odd_n = pixels // 2, cout // 2, pixels % 2, cout % 2
        q4, r1 = k // 4, k % 4
        return "CONV_2D/kxk", [1.0, pixels, pixels * q4, pixels * r1, taps, taps * cin, pixels * kh,
                               (pixels * kh * kw - taps) * cin, col_pairs * pairs, col_pairs * pairs * q4,
                               col_pairs * pairs * r1, col_pairs * odd_n * k, odd_p * cout * k, op.out_numel]
    if kind == "DEPTHWISE_CONV_2D":
        taps, pixels, ph, pw = _window(op)
        c = op.out_channels
        if op.depth_multiplier != 1:
            variant = "DEPTHWISE_CONV_2D/generic"
        elif op.kernel == (3, 3) and ph <= 1 and pw <= 1:
            variant = "DEPTHWISE_CONV_2D/3x3"
        elif isa == "armv6m":  # arm_depthwise_conv_s8_opt without DSP: arm_depthwise_conv_s8
            variant = "DEPTHWISE_CONV_2D/generic"
        else:
            variant = "DEPTHWISE_CONV_2D/opt"
        if variant != "DEPTHWISE_CONV_2D/opt":
            oh = _pad_before(op.in_shape[1], op.kernel[0], op.stride[0], op.padding)[0]
            return variant, [1.0, op.macs, taps * c, op.out_numel, pixels, oh * c, c]
        # arm_depthwise_conv_s8_opt: per pixel, widen the window's taps to int16 (zeros for padding), then
        # 4 channels × 2 taps at a time, the odd tap, the remaining channels one by one.
        (_, h, w, _), (kh, kw), (sh, sw) = op.in_shape, op.kernel, op.stride
        ow = _pad_before(w, kw, sw, op.padding)[0]
        row_taps = _inside_taps(h, kh, sh, op.padding) * ow * kw  # window rows inside the input, × kernel width
        kk, c4, c1 = kh * kw, c // 4, c % 4
        return variant, [1.0, pixels, row_taps, taps, taps * c4, taps * c1, (row_taps - taps) * c,
                         (pixels * kk - row_taps) * c, pixels * c4 * (kk // 2), pixels * c4 * (kk % 2), pixels * c4,
                         pixels * c1 * kk, pixels * c1]
    if kind == "FULLY_CONNECTED":  # loops over output neurons, per-tensor or per-channel (out_channels is 0 then)
        units = op.out_shape[-1]
        k = op.macs // max(units, 1)
        if isa == "armv6m":  # arm_nn_vec_mat_mult_t_s8 in plain C: 3 neurons per step over k, the rest one by one
            return kind, [1.0, units // 3, (units // 3) * k, units % 3, (units % 3) * k]
        return kind, [1.0, op.macs, units, k]
    if kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        taps, pixels, _, _ = _window(op)
        return kind, [1.0, taps * op.out_shape[-1], op.out_numel, pixels]
    if kind in ("ADD", "MUL", "MEAN", "HARD_SWISH", "SOFTMAX", "RESHAPE"):
        return kind, generic_features(op)
    if kind == "PAD":
        in_numel = math.prod(op.in_shape) if op.in_shape else 0  # per output pixel: fill or copy one pixel's channels
        out_pixels = op.out_numel // max(op.out_shape[-1], 1)
        in_pixels = in_numel // max(op.in_shape[-1], 1)
        return kind, [1.0, op.out_numel, in_numel, out_pixels, in_pixels, op.out_shape[1] if len(op.out_shape) == 4 else 0]
    return ELEMENTWISE, generic_features(op)


def generic_features(op: OpFacts) -> list[float]:
    """Counts of an op that walks its tensors once: a constant, output, input and second-input elements."""
    return [1.0, op.out_numel, math.prod(op.in_shape) if op.in_shape else 0, op.aux_numel]


def fit_variant(X, y) -> list[float]:
    """Least squares on relative error (each op weighs alike, small or large); ``X``, ``y``: numpy arrays."""
    import numpy as np  # the fit only: estimating needs no numpy

    w = 1.0 / np.maximum(y, 1.0)
    coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    return [float(c) for c in coef]


def fit_groups(groups: dict[str, list[tuple[Any, float]]]) -> dict[str, tuple[list[float], float, float]]:
    """:func:`fit_variant` per group of (features, instructions) samples, groups in sorted order: {group:
    (coefficients, median and max relative in-sample error)}."""
    import numpy as np

    out = {}
    for name in sorted(groups):
        X = np.stack([np.asarray(x, float) for x, _ in groups[name]])
        y = np.array([y for _, y in groups[name]], float)
        coef = fit_variant(X, y)
        err = np.abs(X @ np.array(coef) / np.maximum(y, 1) - 1)
        out[name] = (coef, float(np.median(err)), float(err.max()))
    return out


def facts_row(op: OpFacts) -> dict[str, Any]:
    """``op``'s facts as one CSV row (shapes written ``AxBxC``)."""
    row = {f: getattr(op, f) for f in ROW_FIELDS}
    for f in ("in_shape", "out_shape", "kernel", "stride"):
        row[f] = "x".join(map(str, row[f]))
    return row


def facts_from_row(row: dict[str, str]) -> OpFacts | None:
    """The :class:`OpFacts` of a CSV row (None for an ``INVOKE`` row)."""
    if row["kind"] == "INVOKE":
        return None

    def shape(s: str) -> tuple[int, ...]:
        return tuple(int(v) for v in s.split("x")) if s else ()

    return OpFacts(row["kind"], shape(row["out_shape"]), int(row["out_numel"]), int(row["macs"]), int(row["params"]),
                   int(row["out_channels"]), shape(row["in_shape"]), row["in_dtype"], int(row["aux_numel"]),
                   shape(row["kernel"]), shape(row["stride"]), row["padding"], int(row["depth_multiplier"]))


@dataclasses.dataclass(frozen=True, eq=False)
class LinearInstructionModel:
    """Instructions of one inference, linear per kernel: ``coefficients`` per kernel (fitted on emulated firmware)
    price each op (:meth:`op_instructions`, the subclass's), and ``INVOKE`` the engine's overhead, linear in the
    ops it runs (:meth:`invoked`). ``key`` names the per-op and per-run memos of :mod:`estimators.table`."""

    coefficients: dict[str, tuple[float, ...]]
    meta: dict[str, Any]  # provenance (commits, compiler, flags), and what the subclass reads from it
    token: int = dataclasses.field(default_factory=lambda: next(_TOKENS), init=False, repr=False)
    default_yaml: ClassVar[Path]
    key: ClassVar[str]

    @classmethod
    def from_dict(cls, doc: dict[str, Any]):
        coefs = {k: tuple(float(c) for c in v) for k, v in doc["coefficients"].items()}
        return cls(coefs, {k: v for k, v in doc.items() if k != "coefficients"})

    @classmethod
    def from_yaml(cls, path: str | Path | None = None):
        with open(path or cls.default_yaml) as f:
            return cls.from_dict(yaml.safe_load(f))

    def op_instructions(self, op: OpFacts) -> int:
        """Whole instructions of ``op`` (integers: sums over ops are exact in any order, so per run and per op
        agree)."""
        raise NotImplementedError

    def invoked(self, table: OpTable) -> int:
        """How many ops the engine runs (what its per-inference overhead grows with)."""
        return len(table.ops)

    def invoke_overhead(self, n_ops: int) -> int:
        a, b = self.coefficients["INVOKE"]
        return max(0, round(a + b * n_ops))

    def per_op(self, table: OpTable) -> list[int]:
        """Instructions of each op of ``table`` (remembered per op and run)."""
        return per_op(table, f"{self.key} {self.token}", self.op_instructions)

    def sample_totals(self, rows: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
        """Per model of the emulated sample ``rows`` (:func:`facts_row` rows, one ``INVOKE`` row each for the
        overhead): (emulated instructions, this model's)."""
        out: dict[str, list[int]] = {}
        for r in rows:
            facts = facts_from_row(r)
            acc = out.setdefault(r["model"], [0, 0])
            acc[0] += int(r["instructions"])
            acc[1] += self.invoke_overhead(int(r["out_numel"])) if facts is None else self.op_instructions(facts)
        return {m: (t, p) for m, (t, p) in out.items()}

    def graph_instructions(self, table: OpTable) -> int:
        """Instructions of one inference: the ops plus the engine's overhead (summed per run: a table built from
        known runs costs a few steps per run)."""
        key = f"{self.key} {self.token}"
        totals = per_run(table, f"{self.key} sum {self.token}",
                         lambda ops: sum(op_values(ops, key, self.op_instructions)))
        return sum(totals) + self.invoke_overhead(self.invoked(table))


class InstructionModel(LinearInstructionModel):
    """TFLM + CMSIS-NN: coefficients per kernel variant of one instruction class (``meta["isa"]``)."""

    default_yaml = MODEL_YAML
    key = "instructions"

    @property
    def isa(self) -> str:
        return self.meta.get("isa", "dsp")

    def op_instructions(self, op: OpFacts) -> int:
        variant, x = op_features(op, self.isa)
        coef = self.coefficients.get(variant) or self.coefficients[ELEMENTWISE]
        return max(0, round(sum(c * v for c, v in zip(coef, x))))


_TOKENS = itertools.count()


@functools.lru_cache(maxsize=16)  # every shipped model file, with room
def load_instruction_model(path: str | Path = MODEL_YAML) -> InstructionModel:
    return InstructionModel.from_yaml(path)


def instruction_model_for(mcu: MCU, runtime: str):
    """The instruction model that prices ``runtime`` on ``mcu``'s core: TFLM + CMSIS-NN's model of the core itself
    where one ships (:data:`CORE_MODEL_FILES`), else of its ``instruction_class`` (ARMv6-M, DSP or MVE) for
    ``tflm``; TinyEngine's
    (:mod:`estimators.tinyengine_instructions`, fitted on its ARMv7E-M code) for ``tinyengine`` and ``analytic``
    (MCUNet's accounting, whose published latencies are TinyEngine's) on DSP-class cores; None elsewhere
    (``tflm-reference``, other cores)."""
    isa = mcu.instruction_class
    if runtime in ("tinyengine", "analytic"):
        if isa != "dsp":
            return None
        from estimators.tinyengine_instructions import load_tinyengine_model

        return load_tinyengine_model()
    if runtime != "tflm" or isa is None:
        return None
    return _core_model(mcu.core, isa)


@functools.lru_cache(maxsize=None)
def _class_model(isa: str) -> InstructionModel:
    """The shipped model of instruction class ``isa`` (keyed by the class name: cheaper than by path)."""
    return load_instruction_model(MODEL_FILES[isa])


@functools.lru_cache(maxsize=None)
def _core_model(core: str, isa: str) -> InstructionModel:
    """The shipped model of ``core`` (e.g. 'cortex-m7', 'cortex-m0plus (x2)') where one ships, else of its class
    ``isa`` (remembered per core: one dictionary look-up per estimate)."""
    path = CORE_MODEL_FILES.get(core.split()[0])
    return load_instruction_model(path) if path is not None and path.is_file() else _class_model(isa)


def estimate_instructions(graph: Graph, isa: str = "dsp", core: str | None = None) -> int:
    """Instructions of one Invoke of ``graph`` under TFLM + CMSIS-NN on a core of class ``isa``: 'dsp'
    (Cortex-M4/M7/M33), 'armv6m' (M0/M0+) or 'mve' (M55/M85); with ``core`` ('cortex-m7'), that core's own
    model where one ships."""
    model = _core_model(core, isa) if core else _class_model(isa)
    return model.graph_instructions(table_of(graph))
