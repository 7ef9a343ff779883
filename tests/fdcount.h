/* Test helper: this process's open file descriptors, for "back to baseline" checks. */
#ifndef MGW_TEST_FDCOUNT_H
#define MGW_TEST_FDCOUNT_H

#include <dirent.h>

static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

#endif /* MGW_TEST_FDCOUNT_H */
