"""Firmware sources for TFLite Micro: the model as a C array, its constants and input preprocessing, and ``main.cc``.

The op kinds come from the .tflite's own operator-code table (read with the flatbuffer schema module that
ai-edge-litert ships), so ``main.cc`` registers exactly the kernels this model needs. ``main.cc`` is a complete
program for the user's board and, compiled with ``-DTINYNAS_TARGET``, the program ``tinynas firmware`` runs in the
emulator: its hooks then come from ``tinynas/target/data/tinynas_target.h``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from tinynas.export.errors import ExportError
from tinynas.export.verify import TensorSpec

_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
# MicroMutableOpResolver methods that are not the CamelCase of the builtin name.
_METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}
_BYTES_PER_LINE = 12


def model_ops(tflite: bytes) -> list[str]:
    """Builtin op names of the operators the model uses, in the order of its operator-code table.

    Custom operators (Flex ops included) raise ``ExportError``: TFLM has no kernel for them here.
    """
    model = schema.Model.GetRootAsModel(tflite, 0)
    used = set()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        used.update(graph.Operators(i).OpcodeIndex() for i in range(graph.OperatorsLength()))
    names = []
    for i in range(model.OperatorCodesLength()):
        if i not in used:
            continue
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = (code.CustomCode() or b"?").decode()
            raise ExportError(f"the int8 model uses the custom operator {custom!r}; TFLite Micro runs builtin "
                              "operators only (a Flex op means onnx2tf found no TFLite builtin for an ONNX node)")
        names.append(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return list(dict.fromkeys(names))


def resolver_method(op: str) -> str:
    """The ``MicroMutableOpResolver`` method that registers builtin ``op`` (e.g. CONV_2D → AddConv2D)."""
    return _METHOD_EXCEPTIONS.get(op) or "Add" + "".join(part[:1] + part[1:].lower() if not part[0].isdigit()
                                                          else part for part in op.split("_"))


def arena_size(measured_bytes: int, margin: float) -> int:
    """``measured_bytes`` × (1 + ``margin``), rounded up to a multiple of 16."""
    if margin < 0:
        raise ExportError(f"arena_margin={margin} is negative; expected a fraction ≥ 0 (0.1 = 10% headroom)")
    return int(math.ceil(measured_bytes * (1.0 + margin) / 16.0)) * 16


def _c_float(v: float) -> str:
    return f"{v!r}f" if math.isfinite(v) else "0.0f"


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How training turned a raw sample into the model's float input: ``(raw × raw_scale − mean) / std``, after
    resizing ``source_size`` (H, W) to the model's input (bilinear, half-pixel centres as torch's
    ``align_corners=False``); ``source_size`` None: fixed-size features (MFCC frames, windows), never resized."""

    dataset: str
    source_size: tuple[int, int] | None
    raw_scale: float  # 1/255 for 8-bit images, 1 for features
    mean: float
    std: float

    @classmethod
    def of(cls, data) -> "Preprocessing":
        """From a :class:`tinynas.data.Dataset`."""
        return cls(data.name, None if data.train.fixed else tuple(data.image_size), data.raw_scale, data.mean,
                   data.std)


def _preprocessing_text(inp: TensorSpec, pre: Preprocessing | None) -> str:
    h, w, c = (list(inp.shape[1:]) + [1, 1, 1])[:3] if len(inp.shape) == 4 else (inp.shape[-1], 1, 1)
    lines = [f"// Input: int8 tensor {list(inp.shape)}, NHWC: kInputHeight rows of kInputWidth pixels of kInputChannels",
             "// channels, row-major.",
             f"constexpr int kInputHeight = {h};", f"constexpr int kInputWidth = {w};",
             f"constexpr int kInputChannels = {c};",
             "// int8 input: q = round(x / kInputScale) + kInputZeroPoint on the normalised input x.",
             f"constexpr float kInputScale = {_c_float(inp.scale)};",
             f"constexpr int kInputZeroPoint = {inp.zero_point};"]
    if pre is None:
        lines += ["// Preprocessing: not recorded by this export (no dataset given); x is whatever the model was trained",
                  "// on. Normalise your data the same way, then quantize with kInputScale and kInputZeroPoint.",
                  "#define TINYNAS_HAS_PREPROCESSING 0"]
        return "\n".join(lines)
    size = ("fixed-size features: no resize" if pre.source_size is None else
            f"resize {pre.source_size[0]}x{pre.source_size[1]} frames to {h}x{w}, bilinear, half-pixel centres"
            if tuple(pre.source_size) != (h, w) else f"frames of {h}x{w}: no resize")
    raw = ("8-bit pixels, 0..255" if math.isclose(pre.raw_scale, 1 / 255) else "feature values" if pre.raw_scale == 1
           else f"as the dataset stores them, 0..{1 / pre.raw_scale:g}")
    lines += [f"// Preprocessing the training used (dataset {pre.dataset}): {size}; then for each raw value v",
              f"// ({raw}) x = (v * kInputRawScale - kInputMean) / kInputStd, one mean and std for all channels",
              "// (the training split's), then quantize. QuantizeInput(v) does both.",
              f"constexpr float kInputRawScale = {_c_float(pre.raw_scale)};",
              f"constexpr float kInputMean = {_c_float(pre.mean)};",
              f"constexpr float kInputStd = {_c_float(pre.std)};",
              "#define TINYNAS_HAS_PREPROCESSING 1",
              "inline int8_t QuantizeInput(float raw) {",
              "  const float x = (raw * kInputRawScale - kInputMean) / kInputStd;",
              "  const float q = std::round(x / kInputScale) + kInputZeroPoint;",
              "  return static_cast<int8_t>(q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q);",
              "}"]
    return "\n".join(lines)


def write_model_data(out_dir: Path, tflite: bytes, arena_bytes: int, inp: TensorSpec, out: TensorSpec,
                     name: str, preprocessing: Preprocessing | None = None, arena_note: str = "") -> tuple[Path, Path]:
    """Write ``model_data.h`` (arena size, input shape, preprocessing and quantization, output quantization) and
    ``model_data.cc`` (16-byte aligned ``g_model_data``) into ``out_dir``."""
    header, source = out_dir / "model_data.h", out_dir / "model_data.cc"
    note = arena_note or "the arena size this model's firmware was built with"
    header.write_text(f"""// {name}: full-int8 TFLite model for TensorFlow Lite Micro. Generated by tinynas.export.
#ifndef TINYNAS_MODEL_DATA_H_
#define TINYNAS_MODEL_DATA_H_

#include <cmath>
#include <cstdint>

extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

// {note}
constexpr int kTensorArenaSize = {arena_bytes};

{_preprocessing_text(inp, preprocessing)}

// int8 output: logit = (q - kOutputZeroPoint) * kOutputScale.
constexpr float kOutputScale = {_c_float(out.scale)};
constexpr int kOutputZeroPoint = {out.zero_point};
constexpr int kNumClasses = {out.shape[-1]};

#endif  // TINYNAS_MODEL_DATA_H_
""")
    lines = [", ".join(f"0x{b:02x}" for b in tflite[i:i + _BYTES_PER_LINE])
             for i in range(0, len(tflite), _BYTES_PER_LINE)]
    body = ",\n    ".join(lines)
    source.write_text(f"""// {name}: {len(tflite)} bytes of .tflite flatbuffer. Generated by tinynas.export.
#include "model_data.h"

alignas(16) const unsigned char g_model_data[] = {{
    {body}
}};
const unsigned int g_model_data_len = {len(tflite)};
""")
    return header, source


def write_main(out_dir: Path, ops: list[str], name: str) -> Path:
    """Write ``main.cc``: a complete TFLM program (exactly ``ops`` registered, the arena, input, Invoke, output)
    whose hooks the emulator build (``-DTINYNAS_TARGET``) replaces."""
    adds = "\n".join(f"  resolver.{resolver_method(op)}();  // {op}" for op in ops)
    path = out_dir / "main.cc"
    path.write_text(MAIN_TEMPLATE.replace("@NAME@", name).replace("@NUM_OPS@", str(len(ops))).replace("@ADDS@", adds))
    return path


MAIN_TEMPLATE = """\
// @NAME@: one inference with TensorFlow Lite Micro. Generated by tinynas.export.
//
// A complete program for your board: it registers exactly the model's ops, places the arena, fills the input,
// runs Invoke and reads the output. The hooks below are where your board's code goes. `tinynas firmware` compiles
// this same file with -DTINYNAS_TARGET for the emulated Cortex-M; then tinynas_target.h (package data of
// tinynas.target) supplies the hooks: its test input, instruction-count markers around Invoke and each op (a
// profiler), the arena report (RecordingMicroInterpreter, PrintAllocations) and an output dump.
#include <cstdint>

#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifdef TINYNAS_TARGET
#include "tinynas_target.h"
#else
namespace {
// Hook: the interpreter class.
using Interpreter = tflite::MicroInterpreter;
// Hook: arena bytes. kTensorArenaSize (model_data.h) holds a margin over what the interpreter measured.
constexpr int kArenaBytes = kTensorArenaSize;
// Hook: a profiler for per-op timing (MicroProfiler), or none.
tflite::MicroProfilerInterface* Profiler() { return nullptr; }

// Hook: fill the int8 input from your sensor: kInputHeight x kInputWidth x kInputChannels raw values (model_data.h
// states the preprocessing and the quantization). This placeholder feeds one constant frame.
bool FillInput(TfLiteTensor* input) {
  for (size_t i = 0; i < input->bytes; ++i) {
#if TINYNAS_HAS_PREPROCESSING
    input->data.int8[i] = QuantizeInput(0.0f);  // your raw value v (a pixel, a feature) here
#else
    input->data.int8[i] = static_cast<int8_t>(kInputZeroPoint);  // x = 0
#endif
  }
  return true;
}

// Hooks: around Invoke (start and stop a timer here).
void BeforeInvoke() {}
void AfterInvoke() {}

// Hook: how much of the arena the model used.
void ReportArena(Interpreter& interpreter) {
  MicroPrintf("arena used %d of %d bytes", static_cast<int>(interpreter.arena_used_bytes()), kArenaBytes);
}

// Hook: use the output (here: the top class of output 0).
void UseOutput(Interpreter& interpreter) {
  const TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int i = 1; i < kNumClasses; ++i) {
    if (output->data.int8[i] > output->data.int8[best]) best = i;
  }
  MicroPrintf("class %d (logit %d)", best,
              static_cast<int>((output->data.int8[best] - kOutputZeroPoint) * kOutputScale));
}
}  // namespace
#endif

namespace {
alignas(16) uint8_t tensor_arena[kArenaBytes];
}  // namespace

int main() {
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("model schema %d, runtime schema %d", static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return 1;
  }

  // Exactly the op kinds this model uses.
  tflite::MicroMutableOpResolver<@NUM_OPS@> resolver;
@ADDS@

  Interpreter interpreter(model, resolver, tensor_arena, kArenaBytes, nullptr, Profiler());
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    MicroPrintf("AllocateTensors failed: the arena of %d bytes is too small", kArenaBytes);
    return 1;
  }
  ReportArena(interpreter);

  if (!FillInput(interpreter.input(0))) {
    MicroPrintf("no input");
    return 1;
  }
  BeforeInvoke();
  const TfLiteStatus status = interpreter.Invoke();
  AfterInvoke();
  if (status != kTfLiteOk) {
    MicroPrintf("Invoke failed");
    return 1;
  }
  UseOutput(interpreter);
  return 0;
}
"""
