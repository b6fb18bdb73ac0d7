// tinynas firmware runner: one inference of the model in model_data.cc on input_data.cc, instrumented.
//
// Prints (semihosting stdout) TFLM's PrintAllocations lines, "tinynas:arena_used N", one
// "tinynas:output I HEX" line per output tensor and "tinynas:ok". The QEMU plugin counts the instructions
// between the marker functions below: tinynas_invoke_begin/end around Invoke, tinynas_op_begin/end around
// each operator (TFLM's profiler hook).
#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "runner_config.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

// Distinct bodies keep the linker and ICF from folding the markers into one address.
volatile uint32_t tinynas_marks[4];
extern "C" {
__attribute__((noinline)) void tinynas_invoke_begin() { tinynas_marks[0]++; }
__attribute__((noinline)) void tinynas_invoke_end() { tinynas_marks[1]++; }
__attribute__((noinline)) void tinynas_op_begin() { tinynas_marks[2]++; }
__attribute__((noinline)) void tinynas_op_end() { tinynas_marks[3]++; }
}

namespace {
alignas(16) uint8_t tensor_arena[kTensorArenaSize];

class MarkerProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override {
    tinynas_op_begin();
    return 0;
  }
  void EndEvent(uint32_t event_handle) override { tinynas_op_end(); }
};

int fail(const char* what) {
  printf("tinynas:error %s\n", what);
  return 1;
}
}  // namespace

int main() {
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return fail("schema version");

  tflite::MicroMutableOpResolver<TINYNAS_NUM_OPS> resolver;
  TINYNAS_ADD_OPS(resolver);

  MarkerProfiler profiler;
  tflite::RecordingMicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize, nullptr,
                                                &profiler);
  if (interpreter.AllocateTensors() != kTfLiteOk) return fail("AllocateTensors");
  interpreter.GetMicroAllocator().PrintAllocations();
  printf("tinynas:arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));

  TfLiteTensor* input = interpreter.input(0);
  if (input->bytes != g_input_data_len) return fail("input size");
  for (size_t i = 0; i < input->bytes; ++i) input->data.uint8[i] = g_input_data[i];

  tinynas_invoke_begin();
  TfLiteStatus status = interpreter.Invoke();
  tinynas_invoke_end();
  if (status != kTfLiteOk) return fail("Invoke");

  for (size_t o = 0; o < interpreter.outputs_size(); ++o) {
    const TfLiteTensor* out = interpreter.output(o);
    printf("tinynas:output %u ", static_cast<unsigned>(o));
    for (size_t i = 0; i < out->bytes; ++i) printf("%02x", out->data.uint8[i]);
    printf("\n");
  }
  printf("tinynas:ok\n");
  return 0;
}
