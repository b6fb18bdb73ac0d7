// One Invoke of a published setup's own TFLM runtime (2021 API: tflite::Profiler, MicroErrorReporter), for
// benchmarks/published_runtime.py. The model array comes from the setup's own model file; the resolver
// registers the setup's ops (PUBLISHED_RUNTIME_OPS, a list of Add*() calls). Markers and printed lines are
// those tinynas.target.emulate reads: instructions between tinynas_invoke_begin/end, per op between
// tinynas_op_begin/end (the interpreter's profiler hook), then "tinynas:arena_used N" and "tinynas:ok".
#include <cstdint>
#include <cstdio>

#include "tensorflow/lite/core/api/profiler.h"
#include "tensorflow/lite/micro/micro_error_reporter.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern const unsigned char PUBLISHED_RUNTIME_MODEL[];

volatile uint32_t tinynas_marks[4];
extern "C" {
__attribute__((noinline)) void tinynas_invoke_begin() { tinynas_marks[0]++; }
__attribute__((noinline)) void tinynas_invoke_end() { tinynas_marks[1]++; }
__attribute__((noinline)) void tinynas_op_begin() { tinynas_marks[2]++; }
__attribute__((noinline)) void tinynas_op_end() { tinynas_marks[3]++; }
}

namespace {
class MarkerProfiler : public tflite::Profiler {
 public:
  uint32_t BeginEvent(const char*, EventType, int64_t, int64_t) override {
    tinynas_op_begin();
    return 0;
  }
  void EndEvent(uint32_t) override { tinynas_op_end(); }
};

uint8_t arena[PUBLISHED_RUNTIME_ARENA];
}  // namespace

int main() {
  static tflite::MicroErrorReporter reporter;
  const tflite::Model* model = tflite::GetModel(PUBLISHED_RUNTIME_MODEL);
  static tflite::MicroMutableOpResolver<16> resolver;
  PUBLISHED_RUNTIME_OPS
  static MarkerProfiler profiler;
  static tflite::MicroInterpreter interpreter(model, resolver, arena, sizeof(arena), &reporter, &profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    printf("tinynas:error AllocateTensors failed\n");
    return 1;
  }
  TfLiteTensor* input = interpreter.input(0);
  uint32_t state = 12345;  // the same pseudo-random bytes on every run
  for (size_t i = 0; i < input->bytes; ++i) {
    state = state * 1103515245u + 12345u;
    input->data.uint8[i] = static_cast<uint8_t>(state >> 24);
  }
  tinynas_invoke_begin();
  TfLiteStatus status = interpreter.Invoke();
  tinynas_invoke_end();
  if (status != kTfLiteOk) {
    printf("tinynas:error Invoke failed\n");
    return 1;
  }
  printf("tinynas:arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  printf("tinynas:ok\n");
  return 0;
}
