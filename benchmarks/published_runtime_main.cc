// One Invoke of a published setup's own TFLM runtime, for benchmarks/published_runtime.py. The model comes from
// the setup's own model file (PUBLISHED_RUNTIME_MODEL_DECL declares what PUBLISHED_RUNTIME_MODEL names); the
// resolver registers the setup's ops (PUBLISHED_RUNTIME_OPS, a list of Add*() calls). PUBLISHED_RUNTIME_API is the
// TFLM interface's year: 2021 (tflite::Profiler, an ErrorReporter) or 2023 (MicroProfilerInterface, none).
// Markers and printed lines are those tinynas.target.emulate reads: instructions between
// tinynas_invoke_begin/end, per op between tinynas_op_begin/end (the interpreter's profiler hook), then
// "tinynas:arena_used N" and "tinynas:ok".
#include <cstdint>
#include <cstdio>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#if PUBLISHED_RUNTIME_API < 2023
#include "tensorflow/lite/core/api/profiler.h"
#include "tensorflow/lite/micro/micro_error_reporter.h"
#else
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#endif
#include "tinynas_markers.h"  // tinynas/target/data

PUBLISHED_RUNTIME_MODEL_DECL;


namespace {
#if PUBLISHED_RUNTIME_API < 2023
class MarkerProfiler : public tflite::Profiler {
 public:
  uint32_t BeginEvent(const char*, EventType, int64_t, int64_t) override {
#else
class MarkerProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char*) override {
#endif
    tinynas_op_begin();
    return 0;
  }
  void EndEvent(uint32_t) override { tinynas_op_end(); }
};

alignas(16) uint8_t arena[PUBLISHED_RUNTIME_ARENA];
}  // namespace

int main() {
  const tflite::Model* model = tflite::GetModel(PUBLISHED_RUNTIME_MODEL);
  static tflite::MicroMutableOpResolver<16> resolver;
  PUBLISHED_RUNTIME_OPS
  static MarkerProfiler profiler;
#if PUBLISHED_RUNTIME_API < 2023
  static tflite::MicroErrorReporter reporter;
  static tflite::MicroInterpreter interpreter(model, resolver, arena, sizeof(arena), &reporter, &profiler);
#else
  static tflite::MicroInterpreter interpreter(model, resolver, arena, sizeof(arena), nullptr, &profiler);
#endif
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
