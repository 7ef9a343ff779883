/* The cross-process handshake lock: flock(LOCK_EX|LOCK_NB) retried on a uv timer until the
 * deadline. Never a blocking flock(), never SIGALRM, never a thread.
 *
 * Two objects: the pending acquire (struct op) owns the retry timer and frees itself in the
 * timer's close callback once it has completed; the lock handed to the caller (struct
 * ibcore_hslock) owns only the fd, so ibcore_hslock_release() is synchronous and needs no loop.
 */
#include "ibcore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "internal.h"

#define DEFAULT_PATH       "/tmp/ibkr_connect.lock"
#define DEFAULT_TIMEOUT_MS 30000u
#define MAX_TIMEOUT_MS     86400000u /* a day: anything longer in the environment is a typo */
#define RETRY_MIN_MS       25u
#define RETRY_MAX_MS       100u /* retries every 25..100 ms, so waiters do not poll in step */

struct ibcore_hslock {
    int fd;    /* -1 until opened */
    bool held; /* flock'ed by us: only then may we touch the file's contents */
};

struct op {
    uv_timer_t timer; /* retries, and the one-turn deferral of early results */
    uv_loop_t *loop;
    struct ibcore_hslock *lock; /* allocated up front, so success cannot fail for memory */
    uint64_t deadline_ms;
    ibcore_hslock_cb cb;
    void *data;
    uint64_t rng; /* ibcore__splitmix64 state for the retry jitter */
    int status;   /* the result found before the first timer turn */
    bool has_status;
    bool done;
    bool cancelling;
    struct op *prev, *next; /* pending acquires, for ibcore_hslock_cancel() */
};

/* The pending acquires of the process (one thread: no lock needed). */
static struct op *pending;

const char *ibcore_hslock_default_path(void)
{
    const char *p = getenv("IBKR_LOCK_FILE_PATH");

    return p != NULL && p[0] != '\0' ? p : DEFAULT_PATH;
}

/* Strict decimal seconds: "30", "2.5", "0.250" (digits, optionally '.' and more digits; no sign,
 * exponent or spaces). Digits past milliseconds are truncated. false on anything else. */
static bool parse_seconds(const char *s, uint64_t *ms)
{
    uint64_t whole = 0, frac = 0;
    unsigned frac_digits = 0;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > MAX_TIMEOUT_MS / 1000)
            return false;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (frac_digits < 3) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_digits++;
            }
        }
        for (; frac_digits < 3; frac_digits++)
            frac *= 10;
    }
    if (*p != '\0')
        return false;
    *ms = whole * 1000 + frac;
    return *ms <= MAX_TIMEOUT_MS;
}

uint64_t ibcore_hslock_default_timeout_ms(void)
{
    const char *s = getenv("IBKR_LOCK_TIMEOUT");
    uint64_t ms;

    if (s == NULL || !parse_seconds(s, &ms))
        return DEFAULT_TIMEOUT_MS;
    return ms;
}

static void lock_free(struct ibcore_hslock *lock)
{
    if (lock->held) {
        /* Empty the diagnostics first: a stale "pid N since T" would name a holder that left. */
        if (ftruncate(lock->fd, 0) != 0) {
            /* Diagnostics only: the lock itself is still released below. */
        }
        flock(lock->fd, LOCK_UN);
    }
    if (lock->fd >= 0)
        close(lock->fd);
    free(lock);
}

void ibcore_hslock_release(struct ibcore_hslock *lock)
{
    if (lock != NULL)
        lock_free(lock);
}

/* "pid 1234 since 2026-11-25T18:30:00.123Z\n", for whoever wonders who holds the lock. */
static void write_holder(int fd)
{
    char line[96], when[32];
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        when[0] = '\0';
    n = snprintf(line, sizeof line, "pid %ld since %s.%03ldZ\n", (long)getpid(), when,
                 ts.tv_nsec / 1000000L);
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
        /* Diagnostics only: a full disk must not cost the caller its lock. */
    }
}

/* 0: locked. UV_EAGAIN: someone else holds it. Else a negative errno. */
static int try_lock(struct op *op)
{
    if (flock(op->lock->fd, LOCK_EX | LOCK_NB) == 0) {
        op->lock->held = true;
        write_holder(op->lock->fd);
        return 0;
    }
    if (errno == EWOULDBLOCK || errno == EINTR)
        return UV_EAGAIN;
    return -errno;
}

static void list_remove(struct op *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        pending = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void on_op_closed(uv_handle_t *h)
{
    free(h->data);
}

static void op_finish(struct op *op, int status)
{
    struct ibcore_hslock *lock = op->lock;
    ibcore_hslock_cb cb = op->cb;
    void *data = op->data;

    if (op->done) /* the first result wins, once */
        return;
    op->done = true;
    op->lock = NULL;
    list_remove(op);
    uv_close((uv_handle_t *)&op->timer, on_op_closed); /* op is freed after this turn */
    if (status != 0) {
        lock_free(lock); /* unlocks too, if a cancel raced a deferred success */
        lock = NULL;
    }
    cb(lock, status, data);
}

static void on_timer(uv_timer_t *t);

static void schedule_retry(struct op *op)
{
    uint64_t now = uv_now(op->loop);
    uint64_t delay = RETRY_MIN_MS + ibcore__rand_upto(&op->rng, RETRY_MAX_MS - RETRY_MIN_MS);

    if (now >= op->deadline_ms)
        delay = 0; /* one last try, then IBCORE_ELOCK */
    else if (delay > op->deadline_ms - now)
        delay = op->deadline_ms - now; /* never sleep past the deadline */
    uv_timer_start(&op->timer, on_timer, delay, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct op *op = t->data;
    int r;

    if (op->has_status) {
        op_finish(op, op->status);
        return;
    }
    r = try_lock(op);
    if (r == UV_EAGAIN) {
        if (uv_now(op->loop) >= op->deadline_ms)
            op_finish(op, IBCORE_ELOCK);
        else
            schedule_retry(op);
        return;
    }
    op_finish(op, r);
}

/* Completes on the next loop turn: the callback never runs inside acquire. */
static void defer_status(struct op *op, int status)
{
    op->status = status;
    op->has_status = true;
    uv_timer_start(&op->timer, on_timer, 0, 0);
}

int ibcore_hslock_acquire(uv_loop_t *loop, const char *path, uint64_t deadline_ms,
                          ibcore_hslock_cb cb, void *data)
{
    struct op *op;
    struct stat st;
    uint64_t now, timeout_ms;
    int fd, r;

    if (loop == NULL || cb == NULL)
        return UV_EINVAL;
    op = calloc(1, sizeof *op);
    if (op == NULL)
        return UV_ENOMEM;
    op->lock = calloc(1, sizeof *op->lock);
    if (op->lock == NULL) {
        free(op);
        return UV_ENOMEM;
    }
    op->lock->fd = -1;
    r = uv_timer_init(loop, &op->timer);
    if (r < 0) {
        free(op->lock);
        free(op);
        return r;
    }
    op->timer.data = op;
    op->loop = loop;
    op->cb = cb;
    op->data = data;
    op->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)op;
    now = uv_now(loop);
    timeout_ms = ibcore_hslock_default_timeout_ms();
    op->deadline_ms = now > UINT64_MAX - timeout_ms ? UINT64_MAX : now + timeout_ms;
    if (deadline_ms < op->deadline_ms)
        op->deadline_ms = deadline_ms;
    op->next = pending;
    if (pending != NULL)
        pending->prev = op;
    pending = op;

    if (path == NULL)
        path = ibcore_hslock_default_path();
    /* O_NOFOLLOW: a symlink planted at the path fails with ELOOP instead of redirecting our
     * O_CREAT (and later ftruncate) to a file of the planter's choosing. */
    fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        defer_status(op, -errno);
        return 0;
    }
    op->lock->fd = fd;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        defer_status(op, UV_EINVAL); /* a FIFO or device is no lock file */
        return 0;
    }
    r = try_lock(op);
    if (r == UV_EAGAIN)
        schedule_retry(op);
    else
        defer_status(op, r);
    return 0;
}

int ibcore_hslock_cancel(uv_loop_t *loop, ibcore_hslock_cb cb, void *data)
{
    struct op *op;
    int n = 0;

    /* Mark first, then complete: a callback that starts a new acquire with the same cb and data
     * must not see it cancelled by this call. */
    for (op = pending; op != NULL; op = op->next) {
        if (op->loop == loop && op->cb == cb && op->data == data)
            op->cancelling = true;
    }
    for (;;) {
        for (op = pending; op != NULL && !op->cancelling; op = op->next)
            ;
        if (op == NULL)
            return n;
        op->cancelling = false;
        op_finish(op, UV_ECANCELED);
        n++;
    }
}
