// Host side of platform.h (make host): stdout console, steady_clock time base, no stack measurement.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "platform.h"

extern "C" {

void platform_init(void) {}
const char* platform_name(void) { return "host"; }
void platform_puts(const char* s) {
  std::fputs(s, stdout);
  std::fflush(stdout);
}
uint64_t platform_ticks(void) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
uint32_t platform_ticks_per_second(void) { return 1000000000u; }
uint64_t platform_calibrate(uint32_t) { return 0; }
void platform_stack_paint(void) {}
uint32_t platform_stack_used(void) { return 0; }
uint32_t platform_heap_used(void) { return 0; }
void platform_exit(int status) { std::exit(status); }

}  // extern "C"
