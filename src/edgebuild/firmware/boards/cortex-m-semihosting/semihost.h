/* ARM semihosting (bkpt 0xAB): console output and exit. Needs QEMU's -semihosting or a debug probe
 * that serves semihosting calls. */
#ifndef EDGEBUILD_SEMIHOST_H_
#define EDGEBUILD_SEMIHOST_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write a NUL-terminated string to the host console (SYS_WRITE0). */
void sh_write0(const char* s);
/* Write len bytes through SYS_WRITE0 in chunks. */
void sh_write(const char* s, size_t len);
/* Leave with the given status (SYS_EXIT_EXTENDED: QEMU exits with it). Never returns. */
__attribute__((noreturn)) void sh_exit(int status);
/* Highest heap address _sbrk handed out, minus the heap start (bytes of heap ever used). */
uint32_t sh_heap_used(void);

#ifdef __cplusplus
}
#endif

#endif /* EDGEBUILD_SEMIHOST_H_ */
