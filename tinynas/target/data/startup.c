/* Start-up for the emulated Cortex-M boards: the vector table (initial stack pointer at the top of the board's
 * RAM region, reset handler) and a reset handler in place of newlib's crt0, whose stack and heap come from
 * QEMU's semihosting SYS_HEAPINFO (a different RAM region on every board; on the AN547 a stack in the ITCM).
 * The handler grants access to the FPU and MVE (coprocessors CP10/CP11, off at reset) when the code was built for
 * a floating-point ABI (Cortex-M55: MVE uses the FPU's registers), zeroes .bss, opens semihosting's standard
 * streams, runs the constructors and main, and exits through semihosting. Every fault ends the emulation with a
 * non-zero exit status. newlib's _sbrk grows the heap from `end` (after .bss) up to the stack pointer. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __stack_top, __bss_start__, __bss_end__;
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern int main(void);

static void fault(void) {
  /* semihosting SYS_EXIT (0x18) with ADP_Stopped_RunTimeErrorUnknown (0x20023) */
  register uint32_t op __asm__("r0") = 0x18;
  register uint32_t arg __asm__("r1") = 0x20023;
  __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(arg) : "memory");
  for (;;) {
  }
}

void tinynas_reset(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  for (volatile uint32_t *p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

__attribute__((section(".vectors"), used)) const void *const tinynas_vectors[16] = {
    &__stack_top, (const void *)tinynas_reset, (const void *)fault, (const void *)fault, (const void *)fault,
    (const void *)fault, (const void *)fault, 0, 0, 0, 0, (const void *)fault, (const void *)fault, 0,
    (const void *)fault, (const void *)fault,
};
