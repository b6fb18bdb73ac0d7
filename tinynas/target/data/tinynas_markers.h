/* The four instruction markers of an emulated run, for C and C++ runners alike: the QEMU plugin (insn_count.c)
 * counts the instructions executed between them (tinynas.target.emulate.MARKERS names them): one Invoke between
 * tinynas_invoke_begin/end, each operator between tinynas_op_begin/end.
 * This header defines them: include it in one translation unit of the firmware. Distinct bodies keep the linker
 * and identical-code folding from merging the markers into one address. */
#ifndef TINYNAS_MARKERS_H_
#define TINYNAS_MARKERS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
volatile uint32_t tinynas_marks[4];
__attribute__((noinline)) void tinynas_invoke_begin(void) { tinynas_marks[0]++; }
__attribute__((noinline)) void tinynas_invoke_end(void) { tinynas_marks[1]++; }
__attribute__((noinline)) void tinynas_op_begin(void) { tinynas_marks[2]++; }
__attribute__((noinline)) void tinynas_op_end(void) { tinynas_marks[3]++; }
#ifdef __cplusplus
}
#endif

#endif /* TINYNAS_MARKERS_H_ */
