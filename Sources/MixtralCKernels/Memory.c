#if defined(__linux__)
#define _GNU_SOURCE  /* O_DIRECT */
#endif
#include "MixtralCKernels.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void mx_keep_freed_memory_for_reuse(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int mx_open_uncached(const char *path, int *direct) {
    *direct = 0;
#if defined(__linux__) && defined(O_DIRECT)
    int fd = open(path, O_RDONLY | O_DIRECT | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        *direct = 1;
        return fd;
    }
    if (errno != EINVAL) return -1;  /* EINVAL: the file system has no O_DIRECT (tmpfs) */
#endif
    int fd2 = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
#if defined(__APPLE__)
    if (fd2 >= 0 && fcntl(fd2, F_NOCACHE, 1) == 0) *direct = 1;
#endif
    return fd2;
}
