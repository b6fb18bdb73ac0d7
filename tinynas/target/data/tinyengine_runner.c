/* tinynas TinyEngine runner: one inference of the code TinyEngine's generator wrote (genModel.c), instrumented.
 *
 * Prints (semihosting stdout) "tinynas:arena_used N" (TinyEngine's static buffer: activations, im2col and
 * kernel buffers), one "tinynas:output 0 HEX" line and "tinynas:ok". The QEMU plugin counts the instructions
 * between the markers: tinynas_invoke_begin/end around invoke(), tinynas_op_begin/end around each generated
 * layer (tinynas.target.tinyengine inserts those calls into genModel.c). TINYNAS_ARENA_BYTES and
 * TINYNAS_OUTPUT_BYTES come from the build's -D flags. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "genNN.h"
#include "tinynas_markers.h"

extern const uint8_t g_input_data[];
extern const unsigned int g_input_data_len;

/* TinyEngine's requantization is floating point: turn the FPU on (CPACR CP10/CP11 full access) before any
 * code that may use it. */
__attribute__((constructor(101))) static void enable_fpu(void) {
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
}

int main(void) {
  printf("tinynas:arena_used %u\n", (unsigned)TINYNAS_ARENA_BYTES);
  memcpy(getInput(), g_input_data, g_input_data_len);
  tinynas_invoke_begin();
  invoke(NULL);
  tinynas_invoke_end();
  const uint8_t *out = (const uint8_t *)getOutput();
  printf("tinynas:output 0 ");
  for (unsigned i = 0; i < TINYNAS_OUTPUT_BYTES; ++i) printf("%02x", out[i]);
  printf("\ntinynas:ok\n");
  return 0;
}
