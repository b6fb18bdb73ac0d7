"""ONNX → full-int8 TFLite (int8 input and output, per-channel weights) with onnx2tf, in a child process.

onnx2tf runs in its own process with its own working folder: it imports TensorFlow (slow, noisy, never
freed), calls ``sys.exit`` on some errors, and looks for its sample calibration images in the working
directory, downloading them when absent. The child's working folder gets that file, made from our own
calibration data, so no download is ever attempted; everything it prints goes to a log file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinynas import children
from tinynas.export.errors import ExportError

if TYPE_CHECKING:  # the onnx2tf child process must not import torch
    from tinynas.export.onnx_export import OnnxModel

# onnx2tf's file name for its fallback calibration images (onnx2tf/utils/common_functions.py).
SAMPLE_DATA_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
TIMEOUT_S = 1800
_NOISE = ("cuda", "W0000", "E0000", "I0000", "absl::", "cpu_feature_guard", "AVX2", "computation placer")


def sample_images(calib_nhwc: np.ndarray, count: int = 20, size: int = 128) -> np.ndarray:
    """``count``×``size``×``size``×3 float32 images made from ``calib_nhwc`` (tiled, nearest-resized, 3 channels)."""
    x = calib_nhwc[np.arange(count) % len(calib_nhwc)]
    rows = np.arange(size) * x.shape[1] // size
    cols = np.arange(size) * x.shape[2] // size
    x = x[:, rows][:, :, cols]
    x = x[..., np.arange(3) % x.shape[3]]
    return np.ascontiguousarray(x, dtype=np.float32)


def _log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept = [ln for ln in text if ln.strip() and not any(n in ln for n in _NOISE)]
    return "\n".join(kept[-lines:])


def _prepend(entry: str, path_list: str | None) -> str:
    return os.pathsep.join([entry, path_list] if path_list else [entry])


def convert_to_int8(onnx: "OnnxModel", calib_nchw: np.ndarray, work_dir: Path, log_path: Path,
                    timeout_s: float = TIMEOUT_S) -> Path:
    """Convert ``onnx`` to full-int8 TFLite calibrated on ``calib_nchw``; returns the .tflite in ``work_dir``.

    ``calib_nchw`` is already normalised as the model expects, so the quantizer gets mean 0 / std 1 and the
    int8 model's input quantizes exactly the model's own (normalised) input.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    calib_nhwc = np.ascontiguousarray(np.transpose(calib_nchw, (0, 2, 3, 1)), dtype=np.float32)
    calib_path = work_dir / "calib_nhwc.npy"
    np.save(calib_path, calib_nhwc)
    np.save(work_dir / SAMPLE_DATA_FILE, sample_images(calib_nhwc))
    out_folder = work_dir / "onnx2tf"
    job = {"onnx": str(Path(onnx.path).resolve()), "calib": str(calib_path.resolve()),
           "input_name": onnx.input_name, "channels": int(calib_nhwc.shape[-1]), "out": str(out_folder.resolve())}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
               # onnx2tf runs the `onnxsim` command installed next to this interpreter
               PATH=_prepend(str(Path(sys.executable).parent), os.environ.get("PATH")),
               PYTHONPATH=_prepend(str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")))
    with open(log_path, "w") as log:
        try:
            proc = children.run([sys.executable, "-m", "tinynas.export.convert", json.dumps(job)], cwd=work_dir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                timeout=timeout_s)  # dies with this process
        except subprocess.TimeoutExpired as e:
            raise ExportError(f"onnx2tf did not finish converting {onnx.path.name} within {timeout_s:.0f} s; "
                              f"its output is in {log_path}") from e
    produced = sorted(out_folder.glob("*_full_integer_quant.tflite"))
    if proc.returncode != 0 or not produced:
        raise ExportError(f"onnx2tf failed to convert {onnx.path.name} to a full-int8 TFLite model (exit code "
                          f"{proc.returncode}, expected {out_folder.name}/*_full_integer_quant.tflite); full "
                          f"log in {log_path}; its last lines:\n{_log_tail(log_path)}")
    return produced[0]


def _refuse_keras_converter(*args, **kwargs):
    raise RuntimeError("tinynas: use the concrete-function converter")


def _child_main(job: dict) -> int:
    import onnx2tf
    import tensorflow as tf

    # onnx2tf's float32/float16 .tflite (unused here) go through TFLiteConverter.from_keras_model, which
    # serialises the whole Keras model twice (half the conversion time); when that raises, onnx2tf falls back
    # to its concrete function. The int8 model comes from the SavedModel either way (byte-identical output).
    tf.lite.TFLiteConverter.from_keras_model = staticmethod(_refuse_keras_converter)
    zeros = np.zeros((1, 1, 1, job["channels"]), dtype=np.float32)
    onnx2tf.convert(
        input_onnx_file_path=job["onnx"], output_folder_path=job["out"],
        output_integer_quantized_tflite=True, quant_type="per-channel",
        input_quant_dtype="int8", output_quant_dtype="int8",
        custom_input_op_name_np_data_path=[[job["input_name"], job["calib"], zeros, zeros + 1.0]],
        not_use_onnxsim=True,  # the ONNX file is already simplified by onnxsim (onnx_export)
        non_verbose=True, verbosity="error",
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(json.loads(sys.argv[1])))
