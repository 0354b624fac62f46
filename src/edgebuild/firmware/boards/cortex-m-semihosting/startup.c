/* Startup code for a Cortex-M board run with semihosting (QEMU mps2-an386 and alike).
 *
 * - vector table: 16 system exceptions + EDGEBUILD_DEVICE_IRQS device IRQs (all to Default_Handler);
 * - Reset_Handler: copy .data, zero .bss, run C/C++ constructors, call main(), then leave through
 *   semihosting SYS_EXIT_EXTENDED with main's result;
 * - fault handlers print the fault status registers and exit with status 3, so a crashing firmware
 *   never hangs the emulator. */
#include <stdint.h>

#include "semihost.h"

#ifndef EDGEBUILD_DEVICE_IRQS
#define EDGEBUILD_DEVICE_IRQS 32
#endif

extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_top__;

extern int main(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

/* -nostartfiles drops crti.o/crtn.o: provide the empty hooks __libc_init_array/__libc_fini_array call. */
void _init(void) {}
void _fini(void) {}

/* Function-local statics with destructors register them with __cxa_atexit(..., &__dso_handle); crtbegin.o
 * (dropped by -nostartfiles) normally defines it. */
void* __dso_handle = 0;

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used))
const vector_t g_vector_table[16 + EDGEBUILD_DEVICE_IRQS] = {
    (vector_t)(&__stack_top__), /* 0: initial MSP */
    Reset_Handler,              /* 1 */
    NMI_Handler,                /* 2 */
    HardFault_Handler,          /* 3 */
    MemManage_Handler,          /* 4 */
    BusFault_Handler,           /* 5 */
    UsageFault_Handler,         /* 6 */
    0, 0, 0, 0,                 /* 7-10 reserved */
    SVC_Handler,                /* 11 */
    DebugMon_Handler,           /* 12 */
    0,                          /* 13 reserved */
    PendSV_Handler,             /* 14 */
    SysTick_Handler,            /* 15 */
    [16 ... 16 + EDGEBUILD_DEVICE_IRQS - 1] = Default_Handler,
};

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t* src = &__data_load__;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  __libc_init_array();
  int rc = main();
  sh_exit(rc);
}

static void put_hex(const char* name, uint32_t v) {
  static const char digits[] = "0123456789abcdef";
  char buf[40];
  int n = 0;
  while (*name && n < 24) buf[n++] = *name++;
  buf[n++] = '0';
  buf[n++] = 'x';
  for (int i = 7; i >= 0; --i) buf[n++] = digits[(v >> (4 * i)) & 0xf];
  buf[n++] = '\n';
  buf[n] = 0;
  sh_write0(buf);
}

void HardFault_Handler(void) {
  sh_write0("\nEDGEBUILD_FW fault\n");
  put_hex("ICSR  = ", *(volatile uint32_t*)0xE000ED04);
  put_hex("CFSR  = ", *(volatile uint32_t*)0xE000ED28);
  put_hex("HFSR  = ", *(volatile uint32_t*)0xE000ED2C);
  put_hex("MMFAR = ", *(volatile uint32_t*)0xE000ED34);
  put_hex("BFAR  = ", *(volatile uint32_t*)0xE000ED38);
  sh_exit(3);
}

void Default_Handler(void) {
  sh_write0("\nEDGEBUILD_FW unexpected_exception\n");
  put_hex("ICSR  = ", *(volatile uint32_t*)0xE000ED04);
  sh_exit(4);
}
