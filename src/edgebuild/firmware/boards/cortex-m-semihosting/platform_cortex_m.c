/* Device side of platform.h: semihosting console, SysTick time base, stack painting. */
#include "platform.h"

#include CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE /* e.g. ARMCM4.h -> core_cm4.h (SysTick, SCB) */
#include "semihost.h"

#ifndef EDGEBUILD_SYSTICK_HZ
#define EDGEBUILD_SYSTICK_HZ 25000000u
#endif
#ifndef EDGEBUILD_BOARD_NAME
#define EDGEBUILD_BOARD_NAME "Cortex-M"
#endif

#define STACK_PATTERN 0xC5A5C5A5u

extern uint32_t __stack_limit__, __stack_top__;
static volatile uint32_t g_systick_wraps;

void SysTick_Handler(void) { g_systick_wraps++; }

void platform_init(void) {
  SysTick->LOAD = 0x00FFFFFFu;
  SysTick->VAL = 0;
  SysTick->CTRL = SysTick_CTRL_CLKSOURCE_Msk | SysTick_CTRL_TICKINT_Msk | SysTick_CTRL_ENABLE_Msk;
}

const char* platform_name(void) { return EDGEBUILD_BOARD_NAME; }

void platform_puts(const char* s) { sh_write0(s); }

uint64_t platform_ticks(void) {
  /* With interrupts masked the wrap counter cannot change under us; a wrap that happened but was
   * not serviced yet shows up as PENDSTSET. */
  uint32_t primask = __get_PRIMASK();
  __disable_irq();
  uint32_t val = SysTick->VAL;
  uint32_t wraps = g_systick_wraps;
  if (SCB->ICSR & SCB_ICSR_PENDSTSET_Msk) {
    val = SysTick->VAL;
    wraps++;
  }
  __set_PRIMASK(primask);
  return (uint64_t)wraps * 0x01000000u + (0x00FFFFFFu - val);
}

uint32_t platform_ticks_per_second(void) { return EDGEBUILD_SYSTICK_HZ; }

/* "subs; bne" = 2 instructions per iteration. */
static void __attribute__((noinline)) spin(uint32_t iters) {
  __asm__ volatile("1: subs %0, %0, #1\n   bne 1b\n" : "+r"(iters) : : "cc");
}

uint64_t platform_calibrate(uint32_t n_insns) {
  uint64_t t0 = platform_ticks();
  spin(n_insns / 2);
  return platform_ticks() - t0;
}

void __attribute__((noinline)) platform_stack_paint(void) {
  uint32_t* sp = (uint32_t*)__builtin_frame_address(0);
  for (uint32_t* p = &__stack_limit__; p < sp - 32; ++p) *p = STACK_PATTERN;
}

uint32_t platform_stack_used(void) {
  uint32_t* p = &__stack_limit__;
  while (p < &__stack_top__ && *p == STACK_PATTERN) ++p;
  return (uint32_t)((char*)&__stack_top__ - (char*)p);
}

uint32_t platform_heap_used(void) { return sh_heap_used(); }

void platform_exit(int status) { sh_exit(status); }
