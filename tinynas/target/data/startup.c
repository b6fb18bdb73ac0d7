/* Vector table for the emulated Cortex-M board: initial stack pointer, reset into newlib's semihosting
 * crt0 (_start: zeroes .bss, runs constructors, calls main, exits through semihosting). Every fault ends
 * the emulation with a non-zero exit status. */
#include <stdint.h>

extern uint32_t __stack_top;
extern void _start(void);

static void fault(void) {
  /* semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023) */
  register uint32_t op __asm__("r0") = 0x18;
  register uint32_t arg __asm__("r1") = 0x20023;
  __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(arg) : "memory");
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) const void *const tinynas_vectors[16] = {
    &__stack_top, (const void *)_start, (const void *)fault, (const void *)fault, (const void *)fault,
    (const void *)fault, (const void *)fault, 0, 0, 0, 0, (const void *)fault, (const void *)fault, 0,
    (const void *)fault, (const void *)fault,
};
