/* libibcore's private declarations: helpers shared by files of core/, and seams for tests. */
#ifndef IBCORE_INTERNAL_H
#define IBCORE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ibcore.h"

/* zombie.c: adds to z the CLOSE_WAIT (st 08) entries of one /proc/net/tcp or tcp6 stream whose
 * remote port is exactly port: own when the socket inode is in own (sorted ascending, n_own),
 * else foreign; an inode the kernel repeats counts once. Malformed and overlong lines are
 * skipped. 0, UV_ENOMEM, or UV_EIO on a read error. */
int ibcore__zombie_parse(FILE *f, int port, const unsigned long *own, size_t n_own,
                         struct ibcore_zombies *z);

/* backoff.c: the core's one PRNG, splitmix64 (state advances by one step per draw). */
uint64_t ibcore__splitmix64(uint64_t *state);
/* Uniform in [0, bound], both ends included, unbiased (rejection sampling). */
uint64_t ibcore__rand_upto(uint64_t *state, uint64_t bound);
/* min(cap, base * 2^n), without overflow for any n. */
uint64_t ibcore__exp_cap(uint64_t base, uint64_t cap, unsigned n);

/* log.c: whether a line at level would go anywhere (formatting can be skipped when not), and
 * the line itself, to the process-wide sink. */
bool ibcore__log_wants(enum ibcore_log_level level);
/* The fields part of a JSON line, from our own fixed formats: false if it did not fit. */
bool ibcore__vfields(char *buf, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void ibcore__log(enum ibcore_log_level level, const char *json);

/* pool.c: ms the machine has been suspended since boot (CLOCK_BOOTTIME - CLOCK_MONOTONIC). A
 * seam: tests point it at a fake clock. */
extern uint64_t (*ibcore__slept_ms)(void);

#endif /* IBCORE_INTERNAL_H */
