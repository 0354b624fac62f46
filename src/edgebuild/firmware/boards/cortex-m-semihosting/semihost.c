/* ARM semihosting + the newlib system calls the firmware needs.
 *
 * Console output goes through SYS_WRITE0; exit through SYS_EXIT_EXTENDED so that QEMU's own exit
 * status equals the firmware's (plain SYS_EXIT can only report success or failure). */
#include "semihost.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_Stopped_ApplicationExit 0x20026
#define ADP_Stopped_RunTimeErrorUnknown 0x20023

static inline int sh_call(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void sh_write0(const char* s) { sh_call(SYS_WRITE0, s); }

void sh_write(const char* s, size_t len) {
  char buf[129];
  while (len > 0) {
    size_t n = len < 128 ? len : 128;
    for (size_t i = 0; i < n; ++i) buf[i] = s[i] ? s[i] : ' ';
    buf[n] = 0;
    sh_write0(buf);
    s += n;
    len -= n;
  }
}

void sh_exit(int status) {
  uint32_t block[2] = {ADP_Stopped_ApplicationExit, (uint32_t)status};
  sh_call(SYS_EXIT_EXTENDED, block);
  /* Hosts without SYS_EXIT_EXTENDED: success or failure only. */
  sh_call(SYS_EXIT, (const void*)(uintptr_t)(status == 0 ? ADP_Stopped_ApplicationExit
                                                         : ADP_Stopped_RunTimeErrorUnknown));
  for (;;) {
  }
}

/* ---- newlib system calls (replace libnosys stubs) ---- */
extern char __heap_start__, __heap_end__;
static char* g_brk = &__heap_start__;
static char* g_brk_max = &__heap_start__;

uint32_t sh_heap_used(void) { return (uint32_t)(g_brk_max - &__heap_start__); }

void* _sbrk(ptrdiff_t incr) {
  if (g_brk + incr > &__heap_end__ || g_brk + incr < &__heap_start__) {
    errno = ENOMEM;
    return (void*)-1;
  }
  char* prev = g_brk;
  g_brk += incr;
  if (g_brk > g_brk_max) g_brk_max = g_brk;
  return prev;
}

int _write(int fd, const char* buf, int len) {
  if (fd != 1 && fd != 2) {
    errno = EBADF;
    return -1;
  }
  sh_write(buf, (size_t)len);
  return len;
}

int _read(int fd, char* buf, int len) { (void)fd; (void)buf; (void)len; return 0; }
int _close(int fd) { (void)fd; return -1; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _isatty(int fd) { return fd <= 2; }
int _fstat(int fd, struct stat* st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _getpid(void) { return 1; }
int _kill(int pid, int sig) { (void)pid; (void)sig; errno = EINVAL; return -1; }
void _exit(int status) { sh_exit(status); }
