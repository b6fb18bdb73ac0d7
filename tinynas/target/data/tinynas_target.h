// tinynas firmware: the hooks of the export's main.cc (compiled with -DTINYNAS_TARGET) for one emulated inference.
//
// main.cc is the program; this header only supplies what the emulator run needs:
// - Interpreter: RecordingMicroInterpreter, whose allocator records the arena's parts;
// - kArenaBytes: TINYNAS_ARENA_BYTES from the build (generous, so the measurement never depends on it);
// - Profiler(): TFLM's profiler hook calls the markers tinynas_op_begin/end around each operator;
// - FillInput(): copies the test input (input_data.cc);
// - BeforeInvoke/AfterInvoke(): the markers tinynas_invoke_begin/end;
// - ReportArena(): PrintAllocations and "tinynas:arena_used N";
// - UseOutput(): one "tinynas:output I HEX" line per output tensor, then "tinynas:ok".
// The QEMU plugin counts the instructions executed between the markers (semihosting stdout carries the rest).
#ifndef TINYNAS_TARGET_H_
#define TINYNAS_TARGET_H_

#include <cstdint>
#include <cstdio>

#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tinynas_markers.h"

extern const uint8_t g_input_data[];
extern const unsigned int g_input_data_len;

namespace {
using Interpreter = tflite::RecordingMicroInterpreter;
constexpr int kArenaBytes = TINYNAS_ARENA_BYTES;

class MarkerProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    tinynas_op_begin();
    return 0;
  }
  void EndEvent(uint32_t event_handle) override { tinynas_op_end(); }
};

MarkerProfiler marker_profiler;
tflite::MicroProfilerInterface* Profiler() { return &marker_profiler; }

bool FillInput(TfLiteTensor* input) {
  if (input->bytes != g_input_data_len) {
    printf("tinynas:error input size %u, test input %u\n", static_cast<unsigned>(input->bytes), g_input_data_len);
    return false;
  }
  for (size_t i = 0; i < input->bytes; ++i) input->data.uint8[i] = g_input_data[i];
  return true;
}

void BeforeInvoke() { tinynas_invoke_begin(); }
void AfterInvoke() { tinynas_invoke_end(); }

void ReportArena(Interpreter& interpreter) {
  interpreter.GetMicroAllocator().PrintAllocations();
  printf("tinynas:arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
}

void UseOutput(Interpreter& interpreter) {
  for (size_t o = 0; o < interpreter.outputs_size(); ++o) {
    const TfLiteTensor* out = interpreter.output(o);
    printf("tinynas:output %u ", static_cast<unsigned>(o));
    for (size_t i = 0; i < out->bytes; ++i) printf("%02x", out->data.uint8[i]);
    printf("\n");
  }
  printf("tinynas:ok\n");
}
}  // namespace

#endif  // TINYNAS_TARGET_H_
