"""``export_model``: trained PyTorch model → ONNX → full-int8 TFLite → verified firmware files.

Everything is built in a temporary folder next to ``out_dir`` and moved into place at the end, with
``export.json`` last: a folder with ``export.json`` holds a finished, verified export. Only onnx2tf's
log is written to ``out_dir`` directly, so it survives a failed conversion.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinynas.children import make_temp_dir, remove_stale_temp_dirs
from tinynas.export import firmware
from tinynas.export.convert import convert_to_int8
from tinynas.export.errors import ExportError
from tinynas.export.onnx_export import export_onnx
from tinynas.export.verify import io_specs, measure_arena_checked, verify
from tinynas.tflm import ArenaReport

FILES = {"onnx": "model.onnx", "tflite": "model_int8.tflite", "model_data_cc": "model_data.cc",
         "model_data_h": "model_data.h", "main_cc": "main.cc", "export_json": "export.json"}
LOG_FILE = "onnx2tf.log"
# estimates key → (export.json error key, measured figure)
_ERRORS = {"sram_bytes": ("arena_error", lambda r: r.arena.total_bytes),
           "flash_bytes": ("flash_error", lambda r: r.tflite_bytes)}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Paths of the exported files and what was measured on them (accuracies are None without a test set)."""

    onnx_path: Path
    tflite_path: Path
    model_data_cc: Path
    model_data_h: Path
    main_cc: Path
    export_json: Path
    log_path: Path
    tflite_bytes: int
    arena: ArenaReport
    arena_size_bytes: int
    ops: tuple[str, ...]
    fp32_accuracy: float | None
    int8_accuracy_litert: float | None
    int8_accuracy_tflm: float | None
    tflm_litert_agreement: float
    tflm_litert_max_int8_diff: int
    max_abs_diff: float
    mean_abs_diff: float
    verified_on: str
    verified_samples: int
    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    seconds: float
    step_seconds: dict[str, float] = dataclasses.field(default_factory=dict, compare=False)


class _Laps:
    """Wall seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now


def _check_inputs(model: torch.nn.Module, calib: np.ndarray, test) -> np.ndarray:
    calib = np.asarray(calib)
    if calib.ndim != 4 or len(calib) == 0 or not np.issubdtype(calib.dtype, np.floating):
        raise ExportError(f"calibration data has shape {calib.shape} and dtype {calib.dtype}; expected float32 "
                          "NCHW samples (N ≥ 1, channels, height, width), normalised as the model expects")
    if not np.isfinite(calib).all():
        raise ExportError("calibration data holds NaN or infinite values; expected finite normalised samples")
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(calib[:1], dtype=np.float32)))
    except Exception as e:  # noqa: BLE001 - report any shape error with the shapes involved
        raise ExportError(f"{type(model).__name__} cannot run on calibration samples of shape {calib.shape[1:]} "
                          f"(C, H, W): {type(e).__name__}: {e}") from e
    if out.ndim != 2:
        raise ExportError(f"{type(model).__name__} returns shape {tuple(out.shape)} for one sample; expected "
                          "(1, classes) logits")
    if test is not None:
        x, y = test
        if np.shape(x)[1:] != calib.shape[1:] or len(x) != len(y) or len(x) == 0:
            raise ExportError(f"test inputs have shape {np.shape(x)} with {len(y)} labels; expected (N, "
                              f"{', '.join(map(str, calib.shape[1:]))}) with N ≥ 1 matching labels, like the "
                              "calibration data")
    return np.ascontiguousarray(calib, dtype=np.float32)


def _plain(value: Any) -> Any:
    """JSON for what ``estimates`` may hold beyond plain types."""
    if isinstance(value, Path):
        return value.name
    if isinstance(value, (np.integer, np.floating, np.ndarray)):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _report(result: ExportResult, estimates: dict | None, arena_margin: float, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "format": 1, "arena_margin": arena_margin}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        doc[field.name] = value.name if isinstance(value, Path) else value
    doc["arena"] = {"total_bytes": result.arena.total_bytes, "head_bytes": result.arena.head_bytes,
                    "tail_bytes": result.arena.tail_bytes}
    doc["estimates"] = estimates
    for key, (error_key, measured) in _ERRORS.items():
        if estimates and estimates.get(key) is not None and measured(result) > 0:
            doc[error_key] = float(estimates[key]) / measured(result) - 1.0
    return doc


def export_model(model: torch.nn.Module, calib: np.ndarray, out_dir: Path, *,
                 test: tuple[np.ndarray, np.ndarray] | None = None, estimates: dict | None = None,
                 arena_margin: float = 0.1, name: str = "model",
                 preprocessing: firmware.Preprocessing | None = None,
                 board_arena: tuple[str, int] | None = None) -> ExportResult:
    """Export ``model`` to a verified full-int8 TFLite model and TFLM firmware sources in ``out_dir``.

    ``calib``: float32 NCHW training samples, normalised as the model expects. ``test``: (x NCHW, labels)
    for accuracies; without it the checks run on ``calib``. ``estimates`` is copied into export.json with
    error ratios (``arena_error`` = sram_bytes / measured arena − 1, ``flash_error`` likewise on bytes).
    ``preprocessing``: how the training fed the model (the dataset's), stated in ``model_data.h``.
    ``board_arena``: (board, bytes) the runtime=tflm estimate for the target board; ``kTensorArenaSize`` covers
    the larger of it and the measured arena, plus ``arena_margin``.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    temp_prefix = f".{out_dir.name}.export-"
    if out_dir.parent.is_dir():
        remove_stale_temp_dirs(out_dir.parent, temp_prefix)  # left by an export whose process was killed
    model = copy.deepcopy(model).cpu().float().eval()  # the caller's model keeps its device and mode
    calib = _check_inputs(model, calib, test)
    firmware.arena_size(0, arena_margin)  # refuse a bad margin before the slow work
    out_dir.mkdir(parents=True, exist_ok=True)
    build = make_temp_dir(out_dir.parent, temp_prefix)
    try:
        paths = {key: build / file for key, file in FILES.items()}
        lap = _Laps()
        onnx_model = export_onnx(model, tuple(calib.shape[1:]), paths["onnx"])
        lap("onnx")
        work = build / "work"
        work.mkdir()
        onnx_copy = work / paths["onnx"].name  # onnx2tf rewrites its input in place
        shutil.copyfile(paths["onnx"], onnx_copy)
        tflite = convert_to_int8(dataclasses.replace(onnx_model, path=onnx_copy), calib, work, out_dir / LOG_FILE)
        shutil.copyfile(tflite, paths["tflite"])
        lap("onnx2tf")
        data = paths["tflite"].read_bytes()
        ops = firmware.model_ops(data)
        in_spec, out_spec = io_specs(paths["tflite"])
        x, y = (test[0], np.asarray(test[1])) if test is not None else (calib, None)
        checks = verify(model, paths["tflite"], x, y, "test" if test is not None else "calibration", ops)
        lap("verify")
        arena = measure_arena_checked(paths["tflite"], ops)
        lap("arena")
        board = board_arena if board_arena and board_arena[1] > arena.total_bytes else None
        arena_bytes = firmware.arena_size(board[1] if board else arena.total_bytes, arena_margin)
        note = (f"The TFLM interpreter (64-bit host, reference kernels) measured {arena.total_bytes} B"
                + (f"; the runtime=tflm estimate for {board[0]}\n// (CMSIS-NN, 32-bit) is {board[1]} B, the larger"
                   if board else "") + f"; plus the export's margin of {arena_margin:.0%} (arena_margin), rounded "
                "up to 16 B.\n// `tinynas firmware` measures the arena on the board's core.")
        firmware.write_model_data(build, data, arena_bytes, in_spec, out_spec, name, preprocessing, note)
        firmware.write_main(build, ops, name)
        lap("firmware")
        shutil.rmtree(work)
        final = {key: out_dir / file for key, file in FILES.items()}
        result = ExportResult(
            final["onnx"], final["tflite"], final["model_data_cc"], final["model_data_h"], final["main_cc"],
            final["export_json"], out_dir / LOG_FILE, len(data), arena, arena_bytes, tuple(ops),
            checks.fp32_accuracy, checks.int8_accuracy_litert, checks.int8_accuracy_tflm,
            checks.tflm_litert_agreement, checks.tflm_litert_max_int8_diff, checks.max_abs_diff,
            checks.mean_abs_diff, checks.on, checks.samples,
            in_spec.shape, in_spec.scale, in_spec.zero_point, out_spec.scale, out_spec.zero_point,
            time.perf_counter() - start, lap.seconds)
        paths["export_json"].write_text(json.dumps(_report(result, estimates, arena_margin, name), indent=2,
                                                   default=_plain) + "\n")
        final["export_json"].unlink(missing_ok=True)  # the folder is not "finished" while files move
        for key in FILES:  # export.json is last
            os.replace(paths[key], final[key])
        return result
    finally:
        shutil.rmtree(build, ignore_errors=True)
