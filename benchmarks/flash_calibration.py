"""Calibrate the .tflite size model on real files; print each file's error; write data/flash_model.yaml.

    python benchmarks/flash_calibration.py --keras 6 --onnx2tf 6           # build files, fit, report
    python benchmarks/flash_calibration.py --keras 6 --onnx2tf 6 --write   # ... and write the YAML

Files are real full-int8 conversions of random archs of the ``mcunet`` search space:
``keras``: a Keras twin of the arch through ``tf.lite.TFLiteConverter`` with a representative dataset;
``onnx2tf``: the arch's PyTorch module → ONNX → onnx2tf full-int8 (the project's export path). Batch-norm
statistics are randomised (as after training) so that folded biases differ and the converter cannot merge
identical buffers. The fit is ordinary least squares of (file bytes − constant bytes − quantization
parameter bytes) on (tensor count, 1) per exporter; leave-one-out errors are printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/estimators.py would shadow the `estimators` package: keep this script's folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import datetime
import os
import random
import subprocess
import tempfile

import numpy as np
import yaml

from estimators.flash import FLASH_MODEL, flash_terms
from estimators.ir import Graph

QUANT_PARAM_BYTES = 12  # float32 scale + int64 zero point per channel (TFLite QuantizationParameters)
SPACE_CFG = {"resolutions": [32, 48, 64]}
SAMPLE_DATA_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # onnx2tf reads it from the cwd


def _space():
    from search_spaces import get_space

    return get_space("mcunet", SPACE_CFG)


def archs(seeds: range, num_classes: int = 10) -> list[tuple[object, Graph]]:
    sp = _space()
    out = []
    for s in seeds:
        arch = sp.random(random.Random(s))
        out.append((arch, sp.to_ir(arch, 3, num_classes)))
    return out


# -- Keras twin + TFLiteConverter -------------------------------------------------------------------
def keras_tflite(arch, num_classes: int = 10, seed: int = 0) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    L = tf.keras.layers
    sp = _space()
    ch = sp.channels(arch.width)
    inp = tf.keras.Input((arch.resolution, arch.resolution, 3), batch_size=1)

    def cba(x, c, k, s, act=True, dw=False):
        conv = L.DepthwiseConv2D(k, s, padding="same", use_bias=False) if dw else \
            L.Conv2D(c, k, s, padding="same", use_bias=False)
        x = L.BatchNormalization()(conv(x))
        return L.ReLU(6.0)(x) if act else x

    x = cba(inp, ch["stem"], 3, 2)
    for b in sp.blocks(arch):
        y = cba(x, b["cin"] * b["expand"], 1, 1) if b["expand"] != 1 else x
        y = cba(y, None, b["kernel"], b["stride"], dw=True)
        y = cba(y, b["cout"], 1, 1, act=False)
        x = L.Add()([y, x]) if b["stride"] == 1 and b["cin"] == b["cout"] else y
    x = L.Dense(num_classes)(L.GlobalAveragePooling2D()(cba(x, ch["head"], 1, 1)))
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 1.5, n)])
        elif isinstance(layer, L.Dense):
            w, b = layer.get_weights()
            layer.set_weights([w, rng.normal(0, 0.1, b.shape)])

    def representative():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, arch.resolution, arch.resolution, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


# -- PyTorch → ONNX → onnx2tf ------------------------------------------------------------------------
def onnx2tf_tflite(arch, work_dir: Path, num_classes: int = 10, seed: int = 0) -> bytes:
    import torch

    model = _space().build_torch(arch, 3, num_classes).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5
    work_dir.mkdir(parents=True, exist_ok=True)
    r = arch.resolution
    torch.onnx.export(model, torch.randn(1, 3, r, r), str(work_dir / "m.onnx"), input_names=["input"],
                      output_names=["output"], opset_version=17, dynamo=False)
    rng = np.random.default_rng(seed)
    np.save(work_dir / "calib.npy", rng.uniform(-1, 1, (8, r, r, 3)).astype(np.float32))
    np.save(work_dir / SAMPLE_DATA_FILE, rng.uniform(0, 1, (20, 128, 128, 3)).astype(np.float32))
    proc = subprocess.run([sys.executable, __file__, "--child", str(work_dir)], capture_output=True, text=True,
                          cwd=work_dir, timeout=600)
    files = sorted((work_dir / "out").glob("*_full_integer_quant.tflite"))
    if proc.returncode or not files:
        raise RuntimeError(f"onnx2tf failed on {work_dir}: {proc.stderr[-2000:]}")
    return files[0].read_bytes()


def _child(work_dir: str) -> None:
    import onnx2tf

    os.chdir(work_dir)
    onnx2tf.convert(input_onnx_file_path="m.onnx", output_folder_path="out", output_integer_quantized_tflite=True,
                    quant_type="per-channel", input_quant_dtype="int8", output_quant_dtype="int8",
                    custom_input_op_name_np_data_path=[["input", "calib.npy", np.zeros(3), np.ones(3)]],
                    non_verbose=True)


def real_files(exporter: str, seeds: range, num_classes: int = 10) -> list[tuple[Graph, int]]:
    """(IR, real file bytes) for the archs of ``seeds`` converted by ``exporter``."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (arch, graph) in zip(seeds, archs(seeds, num_classes)):
            if exporter == "keras":
                data = keras_tflite(arch, num_classes, seed)
            elif exporter == "onnx2tf":
                data = onnx2tf_tflite(arch, Path(tmp) / f"seed{seed}", num_classes, seed)
            else:
                raise ValueError(f"exporter must be 'keras' or 'onnx2tf', got {exporter!r}")
            out.append((graph, len(data)))
            print(f"  {exporter} seed {seed}: {arch.width=} {arch.resolution=} {len(data)} B", flush=True)
    return out


def fit(pairs: list[tuple[Graph, int]]) -> dict[str, float]:
    """Least squares of the residual bytes on (tensors, 1)."""
    terms = [flash_terms(g) for g, _ in pairs]
    y = np.array([size - t["const_bytes"] - QUANT_PARAM_BYTES * t["quant_channels"]
                  for (_, size), t in zip(pairs, terms)], dtype=float)
    a = np.array([[t["tensors"], 1.0] for t in terms])
    (per_tensor, fixed), *_ = np.linalg.lstsq(a, y, rcond=None)
    return {"per_tensor_bytes": float(per_tensor), "fixed_bytes": float(fixed)}


def predict(coef: dict[str, float], graph: Graph) -> float:
    t = flash_terms(graph)
    return (t["const_bytes"] + QUANT_PARAM_BYTES * t["quant_channels"] + coef["per_tensor_bytes"] * t["tensors"]
            + coef["fixed_bytes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras", type=int, default=6, help="number of Keras/TFLiteConverter files")
    ap.add_argument("--onnx2tf", type=int, default=6, help="number of onnx2tf files")
    ap.add_argument("--write", action="store_true", help=f"write {FLASH_MODEL}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    doc = {"generated_by": "benchmarks/flash_calibration.py --write", "generated_on": datetime.date.today().isoformat(),
           "quant_param_bytes_per_channel": QUANT_PARAM_BYTES,
           "quant_param_source": "TFLite schema QuantizationParameters: float32 scale + int64 zero_point per channel",
           "default_exporter": "onnx2tf", "exporters": {}}
    for exporter, n in (("keras", args.keras), ("onnx2tf", args.onnx2tf)):
        if n <= 0:
            continue
        pairs = real_files(exporter, range(n))
        coef = fit(pairs)
        errs = [abs(predict(fit(pairs[:i] + pairs[i + 1:]), g) / size - 1) for i, (g, size) in enumerate(pairs)]
        print(f"{exporter}: per_tensor_bytes={coef['per_tensor_bytes']:.1f} fixed_bytes={coef['fixed_bytes']:.0f}; "
              f"leave-one-out |err| mean {np.mean(errs):.3%} max {np.max(errs):.3%} over {n} files "
              f"({min(s for _, s in pairs)}..{max(s for _, s in pairs)} B)")
        doc["exporters"][exporter] = {**{k: round(v, 2) for k, v in coef.items()}, "files": n,
                                      "loo_mean_abs_error": float(np.mean(errs)),
                                      "loo_max_abs_error": float(np.max(errs))}
    if args.write:
        with open(FLASH_MODEL, "w") as f:
            f.write("# Generated by benchmarks/flash_calibration.py --write; do not edit by hand.\n")
            yaml.safe_dump(doc, f, sort_keys=False)
        print(f"wrote {FLASH_MODEL}")


if __name__ == "__main__":
    main()
