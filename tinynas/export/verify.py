"""Check the int8 model against the float model: LiteRT and TFLite Micro accuracy, logit differences, arena.

Inputs are quantized with the model's own input scale / zero point; outputs are dequantized with its output
ones. LiteRT runs its reference kernels (``BUILTIN_REF``), the semantics TFLM's kernels port, so the two
agree to within integer rounding; its default optimized kernels (XNNPACK) round differently and, on a model
with near-tied logits, flip a few percent of predictions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from tinynas import tflm
from tinynas.export.errors import ExportError

# Fewer same-argmax samples than this between LiteRT and TFLM means one of them runs the model wrongly.
MIN_AGREEMENT = 0.98
_BATCH = 256


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One int8 graph input or output: shape (NHWC for images), scale and zero point."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclasses.dataclass(frozen=True)
class Verification:
    """Figures measured on ``samples`` inputs of the ``on`` split ("test" or "calibration")."""

    on: str
    samples: int
    fp32_accuracy: float | None
    int8_accuracy_litert: float | None
    int8_accuracy_tflm: float | None
    tflm_litert_agreement: float
    tflm_litert_max_int8_diff: int
    max_abs_diff: float
    mean_abs_diff: float


def _interpreter(tflite_path: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(tflite_path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def _spec(detail: dict, what: str, tflite_path: Path) -> TensorSpec:
    if detail["dtype"] != np.int8:
        raise ExportError(f"{tflite_path.name}: the model's {what} is {np.dtype(detail['dtype'])}, expected int8 "
                          "(a full-integer model with int8 input and output)")
    scale, zero_point = detail["quantization"]
    return TensorSpec(tuple(int(d) for d in detail["shape"]), float(scale), int(zero_point))


def io_specs(tflite_path: Path) -> tuple[TensorSpec, TensorSpec]:
    """The single int8 input and output of the model at ``tflite_path``."""
    interp = _interpreter(tflite_path)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    if len(ins) != 1 or len(outs) != 1:
        raise ExportError(f"{tflite_path.name} has {len(ins)} inputs and {len(outs)} outputs, expected one of each")
    return _spec(ins[0], "input", tflite_path), _spec(outs[0], "output", tflite_path)


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return np.clip(np.round(x / spec.scale) + spec.zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return ((q.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


def run_litert(tflite_path: Path, x_int8: np.ndarray) -> np.ndarray:
    """Int8 outputs of LiteRT's interpreter for the batch ``x_int8``, one sample at a time."""
    interp = _interpreter(tflite_path)
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    rows = []
    for sample in x_int8:
        interp.set_tensor(inp, sample[None])
        interp.invoke()
        rows.append(interp.get_tensor(out)[0].copy())
    return np.stack(rows)


def torch_logits(model: torch.nn.Module, x_nchw: np.ndarray) -> np.ndarray:
    """Float logits of an eval-mode CPU ``model``, in batches."""
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x_nchw[i:i + _BATCH]).float()).cpu().numpy()
                               for i in range(0, len(x_nchw), _BATCH)])


def run_tflm_checked(tflite_path: Path, x_int8: np.ndarray, ops: list[str]) -> np.ndarray:
    try:
        return tflm.run_tflm(tflite_path, x_int8)
    except ValueError as e:
        raise ExportError(f"TFLite Micro cannot run {tflite_path.name} (ops: {', '.join(ops)}); expected every op "
                          f"to have a TFLM kernel and the model to allocate: {e}") from e


def measure_arena_checked(tflite_path: Path, ops: list[str]) -> tflm.ArenaReport:
    try:
        return tflm.measure_arena(tflite_path)
    except ValueError as e:
        raise ExportError(f"TFLite Micro cannot allocate {tflite_path.name} (ops: {', '.join(ops)}): {e}") from e


def verify(model: torch.nn.Module, tflite_path: Path, x_nchw: np.ndarray, y: np.ndarray | None, on: str,
           ops: list[str]) -> Verification:
    """Run ``x_nchw`` through the float model, LiteRT and TFLM; accuracies need labels ``y``."""
    x_nchw = np.asarray(x_nchw, dtype=np.float32)
    in_spec, out_spec = io_specs(tflite_path)
    x_q = quantize(np.transpose(x_nchw, (0, 2, 3, 1)), in_spec)
    if tuple(x_q.shape[1:]) != in_spec.shape[1:]:
        raise ExportError(f"{tflite_path.name} takes NHWC input {in_spec.shape}, but the {on} data is NCHW "
                          f"{x_nchw.shape}")
    fp32 = torch_logits(model, x_nchw)
    q_litert = run_litert(tflite_path, x_q)
    q_tflm = run_tflm_checked(tflite_path, x_q, ops)
    deq = dequantize(q_litert, out_spec).reshape(fp32.shape)
    diff = np.abs(deq - fp32)
    agreement = float(np.mean(q_litert.argmax(-1) == q_tflm.argmax(-1)))
    if agreement < MIN_AGREEMENT:
        raise ExportError(f"LiteRT and TFLite Micro disagree on {tflite_path.name}: the same class on only "
                          f"{agreement:.1%} of {len(x_q)} {on} samples, expected at least {MIN_AGREEMENT:.0%}")

    def acc(logits):
        return None if y is None else float(np.mean(logits.argmax(-1) == np.asarray(y)))

    return Verification(on, len(x_q), acc(fp32), acc(q_litert), acc(q_tflm), agreement,
                        int(np.abs(q_litert.astype(np.int16) - q_tflm.astype(np.int16)).max()),
                        float(diff.max()), float(diff.mean()))
