/* CMSIS 5 names TinyEngine's kernels use, on top of the CMSIS-NN and CMSIS Core headers TFLM pins.
 *
 * TinyEngine was written against CMSIS 5, whose arm_math.h declared the q-types and arm_status and pulled in the
 * compiler intrinsics (__SMLAD, __SXTB16, ...), and whose CMSIS-NN named its unaligned reads q7x4/q15x2. The
 * build copies this file as arm_math.h and force-includes it into every TinyEngine source. */
#pragma once
#include <stdint.h>

#include "arm_nnsupportfunctions.h"
#include "cmsis_compiler.h"

typedef int8_t q7_t;
typedef int16_t q15_t;
typedef int32_t q31_t;
typedef int64_t q63_t;
typedef enum {
  ARM_MATH_SUCCESS = 0,
  ARM_MATH_ARGUMENT_ERROR = -1,
  ARM_MATH_LENGTH_ERROR = -2,
  ARM_MATH_SIZE_MISMATCH = -3,
  ARM_MATH_NANINF = -4,
  ARM_MATH_SINGULAR = -5,
  ARM_MATH_TEST_FAILURE = -6
} arm_status;

#define arm_nn_read_q7x4_ia(p) arm_nn_read_s8x4_ia(p)
#define arm_nn_read_q7x4(p) arm_nn_read_s8x4(p)
#define arm_nn_read_q15x2(p) arm_nn_read_s16x2(p)
#define write_q15x2_ia(p, v) arm_nn_write_q15x2_ia(p, v)
