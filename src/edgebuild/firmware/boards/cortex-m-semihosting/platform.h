/* What the edgebuild firmware runner needs from a board: console, time base, stack measurement.
 * platform_cortex_m.c implements it on the device, platform_host.cc on the host (make host). */
#ifndef EDGEBUILD_PLATFORM_H_
#define EDGEBUILD_PLATFORM_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void platform_init(void);
const char* platform_name(void);
void platform_puts(const char* s); /* no newline added */
uint64_t platform_ticks(void);     /* monotonic; SysTick on the device */
uint32_t platform_ticks_per_second(void);
/* Runs a loop of exactly n_insns instructions and returns the ticks it took (ticks -> instructions
 * under QEMU -icount shift=0). */
uint64_t platform_calibrate(uint32_t n_insns);
/* Fills the unused stack with a pattern (call first thing in main); platform_stack_used() then
 * returns the deepest stack use since, in bytes (0 where not measured). */
void platform_stack_paint(void);
uint32_t platform_stack_used(void);
uint32_t platform_heap_used(void);
/* Leaves the program with `status` (semihosting exit on the device). */
void platform_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* EDGEBUILD_PLATFORM_H_ */
