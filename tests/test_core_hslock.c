/* The handshake lock on a real loop, real files and real processes: exactly once, deadlines,
 * environment, O_NOFOLLOW/0600/O_CLOEXEC, and at most one holder across forked processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"

#include "loop_util.h"

#define N_CHILDREN 4

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog; /* unref'd: fires only if a test would hang */
    bool hung;
    char dir[64];
    char path[128];
};

/* One acquire's outcome, counted. */
struct result {
    int calls;
    int status;
    struct ibcore_hslock *lock;
    uint64_t at_ms; /* uv_now() when the callback ran */
    uv_loop_t *loop;
    bool release_in_cb;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    loop_fixture_init(fx, 10000);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mgw-hslock-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/ibkr_connect.lock", fx->dir);
    unsetenv("IBKR_LOCK_FILE_PATH");
    unsetenv("IBKR_LOCK_TIMEOUT");
    *state = fx;
    return 0;
}

static void remove_dir(const char *dir)
{
    char p[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(dir);

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    assert_false(fx->hung);
    loop_close_all(&fx->loop);
    remove_dir(fx->dir);
    unsetenv("IBKR_LOCK_FILE_PATH");
    unsetenv("IBKR_LOCK_TIMEOUT");
    free(fx);
    return 0;
}

static uint64_t now_ms(uv_loop_t *loop)
{
    uv_update_time(loop);
    return uv_now(loop);
}

static void on_locked(struct ibcore_hslock *lock, int status, void *data)
{
    struct result *r = data;

    r->calls++;
    r->status = status;
    r->lock = lock;
    r->at_ms = uv_now(r->loop);
    if (status == 0)
        assert_non_null(lock);
    else
        assert_null(lock);
    if (r->release_in_cb) {
        ibcore_hslock_release(lock);
        r->lock = NULL;
    }
}

/* A second, independent open file description: flock conflicts with it even in-process. */
static int raw_open(const char *path)
{
    int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    return fd;
}

static bool is_locked(const char *path)
{
    int fd = raw_open(path);
    bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0;

    assert_true(!locked || errno == EWOULDBLOCK);
    close(fd);
    return locked;
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    assert_true(fd >= 0);
    n = read(fd, buf, cap - 1);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    return (size_t)n;
}

/* The fd this process has open on path (via /proc/self/fd), or -1. */
static int find_fd(const char *path)
{
    char target[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir("/proc/self/fd");
    int found = -1;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);

        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) == 0)
            found = (int)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return found;
}

/* "pid <pid> since YYYY-MM-DDTHH:MM:SS.mmmZ\n" */
static bool holder_line_ok(const char *path, pid_t pid)
{
    char buf[256], want[64];
    size_t n = read_file(path, buf, sizeof buf);

    snprintf(want, sizeof want, "pid %ld since ", (long)pid);
    if (strncmp(buf, want, strlen(want)) != 0)
        return false;
    return n == strlen(want) + 24 + 1 && buf[n - 2] == 'Z' && buf[n - 1] == '\n' &&
           buf[strlen(want) + 10] == 'T' && buf[strlen(want) + 19] == '.';
}

static void hslock_acquire_release_holds_then_frees(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };
    struct stat st;
    int fd;

    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 2000, on_locked, &r), 0);
    assert_int_equal(r.calls, 0); /* never inside acquire, even when free at once */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_true(is_locked(fx->path));
    assert_true(holder_line_ok(fx->path, getpid()));
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    fd = find_fd(fx->path);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    ibcore_hslock_release(r.lock);
    assert_false(is_locked(fx->path));
    assert_int_equal(find_fd(fx->path), -1); /* closed synchronously */
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_size, 0); /* no stale holder line */
    ibcore_hslock_release(NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
}

struct handover {
    uv_timer_t timer;
    struct result *first;
    uint64_t released_at_ms;
};

static void on_handover(uv_timer_t *t)
{
    struct handover *h = t->data;

    h->released_at_ms = uv_now(t->loop);
    ibcore_hslock_release(h->first->lock);
    h->first->lock = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void hslock_second_acquire_waits_for_release(void **state)
{
    struct fixture *fx = *state;
    struct result a = { .loop = &fx->loop }, b = { .loop = &fx->loop };
    struct handover h = { .first = &a };

    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 2000, on_locked, &a), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.status, 0);

    /* Two opens in one process are two open file descriptions: they conflict. */
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 5000, on_locked, &b), 0);
    uv_timer_init(&fx->loop, &h.timer);
    h.timer.data = &h;
    uv_timer_start(&h.timer, on_handover, 150, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, 0);
    assert_true(b.at_ms >= h.released_at_ms);
    assert_true(b.at_ms <= h.released_at_ms + 150); /* the next retry, <= 100 ms later */
    assert_true(holder_line_ok(fx->path, getpid()));
    ibcore_hslock_release(b.lock);
    assert_false(is_locked(fx->path));
}

static void hslock_release_inside_callback(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop, .release_in_cb = true };

    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 1000, on_locked, &r), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_false(is_locked(fx->path));
}

static void hslock_timeout_reports_elock_in_window(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };
    int holder = raw_open(fx->path);
    uint64_t deadline;
    char buf[64];

    assert_int_equal(flock(holder, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(pwrite(holder, "someone else\n", 13, 0), 13);
    deadline = now_ms(&fx->loop) + 300;
    assert_int_equal(ibcore_hslock_acquire(&fx->loop, fx->path, deadline, on_locked, &r), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, IBCORE_ELOCK);
    assert_true(r.at_ms >= deadline);
    assert_true(r.at_ms <= deadline + 200);
    read_file(fx->path, buf, sizeof buf);
    assert_string_equal(buf, "someone else\n"); /* a waiter never touches the holder's line */
    close(holder);
}

static void hslock_past_deadline_tries_once(void **state)
{
    struct fixture *fx = *state;
    struct result free_lock = { .loop = &fx->loop }, busy = { .loop = &fx->loop };

    assert_int_equal(ibcore_hslock_acquire(&fx->loop, fx->path, 0, on_locked, &free_lock), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(free_lock.calls, 1);
    assert_int_equal(free_lock.status, 0);

    assert_int_equal(ibcore_hslock_acquire(&fx->loop, fx->path, 0, on_locked, &busy), 0);
    assert_int_equal(busy.calls, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(busy.calls, 1);
    assert_int_equal(busy.status, IBCORE_ELOCK);
    ibcore_hslock_release(free_lock.lock);
}

static void hslock_default_timeout_parses_env(void **state)
{
    static const char *const bad[] = { "",
                                       "abc",
                                       "-1",
                                       "+1",
                                       "1e3",
                                       "1.",
                                       ".5",
                                       " 3",
                                       "3 ",
                                       "3s",
                                       "0x10",
                                       "86401",
                                       "99999999999999999999" };
    size_t i;

    (void)state;
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 30000);
    assert_string_equal(ibcore_hslock_default_path(), "/tmp/ibkr_connect.lock");
    setenv("IBKR_LOCK_FILE_PATH", "", 1);
    assert_string_equal(ibcore_hslock_default_path(), "/tmp/ibkr_connect.lock");
    setenv("IBKR_LOCK_TIMEOUT", "30", 1);
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 30000);
    setenv("IBKR_LOCK_TIMEOUT", "2.5", 1);
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 2500);
    setenv("IBKR_LOCK_TIMEOUT", "0.0019", 1); /* truncated past milliseconds */
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 1);
    setenv("IBKR_LOCK_TIMEOUT", "0", 1);
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 0);
    setenv("IBKR_LOCK_TIMEOUT", "86400", 1);
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 86400000);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("IBKR_LOCK_TIMEOUT", bad[i], 1);
        assert_int_equal(ibcore_hslock_default_timeout_ms(), 30000);
    }
}

static void hslock_env_path_and_timeout_honoured(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };
    int holder = raw_open(fx->path);
    uint64_t start;

    setenv("IBKR_LOCK_FILE_PATH", fx->path, 1);
    setenv("IBKR_LOCK_TIMEOUT", "0.3", 1);
    assert_string_equal(ibcore_hslock_default_path(), fx->path);
    assert_int_equal(ibcore_hslock_default_timeout_ms(), 300);

    assert_int_equal(flock(holder, LOCK_EX | LOCK_NB), 0);
    start = now_ms(&fx->loop);
    /* The caller allows forever; the environment's 0.3 s wins. */
    assert_int_equal(ibcore_hslock_acquire(&fx->loop, NULL, UINT64_MAX, on_locked, &r), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, IBCORE_ELOCK);
    assert_true(r.at_ms >= start + 300);
    assert_true(r.at_ms <= start + 500);
    close(holder);

    /* And the path: free now, so acquire(NULL) takes the file named by the environment. */
    r.calls = 0;
    assert_int_equal(ibcore_hslock_acquire(&fx->loop, NULL, UINT64_MAX, on_locked, &r), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_true(is_locked(fx->path));
    ibcore_hslock_release(r.lock);
}

static void hslock_symlink_at_path_refused(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };
    char target[160], buf[64];
    struct stat st;
    int fd;

    snprintf(target, sizeof target, "%s/precious", fx->dir);
    fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "precious\n", 9), 9);
    close(fd);
    assert_int_equal(symlink(target, fx->path), 0);

    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 1000, on_locked, &r), 0);
    assert_int_equal(r.calls, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, UV_ELOOP);
    read_file(target, buf, sizeof buf);
    assert_string_equal(buf, "precious\n");
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_false(is_locked(target));
    assert_int_equal(find_fd(target), -1);
}

static void hslock_missing_directory_reports_enoent(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };
    char path[160];

    snprintf(path, sizeof path, "%s/no/such/dir.lock", fx->dir);
    assert_int_equal(ibcore_hslock_acquire(&fx->loop, path, 0, on_locked, &r), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, UV_ENOENT);
}

static void hslock_invalid_arguments_refused(void **state)
{
    struct fixture *fx = *state;
    struct result r = { .loop = &fx->loop };

    assert_int_equal(ibcore_hslock_acquire(NULL, fx->path, 0, on_locked, &r), UV_EINVAL);
    assert_int_equal(ibcore_hslock_acquire(&fx->loop, fx->path, 0, NULL, &r), UV_EINVAL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 0);
    assert_int_equal(find_fd(fx->path), -1);
}

static void hslock_cancel_completes_pending_once(void **state)
{
    struct fixture *fx = *state;
    struct result waiting = { .loop = &fx->loop }, granted = { .loop = &fx->loop };
    struct result other = { .loop = &fx->loop };
    int holder = raw_open(fx->path);

    /* A waiter (someone else holds it) and another caller's waiter that must survive. */
    assert_int_equal(flock(holder, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 5000, on_locked, &waiting),
        0);
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 300, on_locked, &other), 0);
    assert_int_equal(ibcore_hslock_cancel(&fx->loop, on_locked, &waiting), 1);
    assert_int_equal(waiting.calls, 1);
    assert_int_equal(waiting.status, UV_ECANCELED);
    assert_int_equal(ibcore_hslock_cancel(&fx->loop, on_locked, &waiting), 0);
    assert_int_equal(other.calls, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(waiting.calls, 1);
    assert_int_equal(other.calls, 1);
    assert_int_equal(other.status, IBCORE_ELOCK);
    close(holder);

    /* A success waiting for its loop turn: cancelled, and the flock it took is given back. */
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 1000, on_locked, &granted),
        0);
    assert_true(is_locked(fx->path));
    assert_int_equal(ibcore_hslock_cancel(&fx->loop, on_locked, &granted), 1);
    assert_int_equal(granted.calls, 1);
    assert_int_equal(granted.status, UV_ECANCELED);
    assert_false(is_locked(fx->path));
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(granted.calls, 1);
}

/* --- across processes ------------------------------------------------------------------- */

struct record {
    long pid;
    uint64_t enter_ns, leave_ns;
    int ok;
};

struct child {
    uv_loop_t loop;
    uv_timer_t work;
    struct ibcore_hslock *lock;
    int out;
    struct record rec;
    const char *path;
};

static void on_child_done(uv_timer_t *t)
{
    struct child *c = t->data;

    c->rec.leave_ns = uv_hrtime();
    ibcore_hslock_release(c->lock);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_child_locked(struct ibcore_hslock *lock, int status, void *data)
{
    struct child *c = data;

    if (status != 0)
        return;
    c->rec.enter_ns = uv_hrtime();
    c->lock = lock;
    c->rec.ok = holder_line_ok(c->path, getpid());
    uv_timer_init(&c->loop, &c->work);
    c->work.data = c;
    uv_timer_start(&c->work, on_child_done, 50, 0); /* "the handshake" */
}

/* A child: own loop, own deadline, no alarm; it reports one record and exits by itself. */
static void child_main(const char *path, int out)
{
    struct child c = { .out = out, .path = path };
    int ok;

    c.rec.pid = (long)getpid();
    if (uv_loop_init(&c.loop) != 0)
        _exit(2);
    if (ibcore_hslock_acquire(&c.loop, path, uv_now(&c.loop) + 5000, on_child_locked, &c) != 0)
        _exit(3);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    ok = c.rec.ok && c.rec.leave_ns > c.rec.enter_ns && uv_loop_close(&c.loop) == 0;
    if (write(out, &c.rec, sizeof c.rec) != (ssize_t)sizeof c.rec)
        _exit(4);
    _exit(ok ? 0 : 1);
}

static int cmp_enter(const void *a, const void *b)
{
    const struct record *x = a, *y = b;

    return (x->enter_ns > y->enter_ns) - (x->enter_ns < y->enter_ns);
}

static void hslock_cross_process_handshakes_never_overlap(void **state)
{
    struct fixture *fx = *state;
    struct record recs[N_CHILDREN];
    pid_t pids[N_CHILDREN];
    int p[2], i, n = 0;
    ssize_t got;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    for (i = 0; i < N_CHILDREN; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(p[0]);
            child_main(fx->path, p[1]);
        }
    }
    close(p[1]);
    while (n < N_CHILDREN && (got = read(p[0], &recs[n], sizeof recs[n])) > 0) {
        assert_int_equal(got, sizeof recs[n]); /* < PIPE_BUF: writes are atomic */
        n++;
    }
    close(p[0]);
    for (i = 0; i < N_CHILDREN; i++) {
        int status;

        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(n, N_CHILDREN);
    qsort(recs, N_CHILDREN, sizeof recs[0], cmp_enter);
    for (i = 0; i < N_CHILDREN; i++) {
        assert_true(recs[i].ok);
        /* ~50 ms of "handshake" (uv timers have 1 ms granularity on a cached clock). */
        assert_true(recs[i].leave_ns - recs[i].enter_ns >= 45 * 1000000ull);
        if (i > 0) /* at most one handshake in flight */
            assert_true(recs[i].enter_ns >= recs[i - 1].leave_ns);
    }
    assert_false(is_locked(fx->path));
}

static void hslock_holder_exit_releases(void **state)
{
    struct fixture *fx = *state;
    struct result busy = { .loop = &fx->loop }, after = { .loop = &fx->loop };
    int up[2], down[2], status;
    char c;
    pid_t pid;

    assert_int_equal(pipe2(up, O_CLOEXEC), 0);
    assert_int_equal(pipe2(down, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uv_loop_t loop;
        struct result r = { .loop = &loop };

        close(up[0]);
        close(down[1]);
        if (uv_loop_init(&loop) != 0 ||
            ibcore_hslock_acquire(&loop, fx->path, uv_now(&loop) + 5000, on_locked, &r) != 0)
            _exit(2);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (r.status != 0 || write(up[1], "x", 1) != 1)
            _exit(3);
        while (read(down[0], &c, 1) > 0) /* until the parent closes it */
            ;
        _exit(0); /* dies holding it, like a crash: no release */
    }
    close(up[1]);
    close(down[0]);
    assert_int_equal(read(up[0], &c, 1), 1);
    assert_true(is_locked(fx->path));
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 100, on_locked, &busy), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(busy.status, IBCORE_ELOCK);

    close(down[1]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(up[0]);
    assert_int_equal(
        ibcore_hslock_acquire(&fx->loop, fx->path, now_ms(&fx->loop) + 100, on_locked, &after), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(after.calls, 1);
    assert_int_equal(after.status, 0);
    ibcore_hslock_release(after.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hslock_acquire_release_holds_then_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_second_acquire_waits_for_release, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_release_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_timeout_reports_elock_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_past_deadline_tries_once, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_default_timeout_parses_env, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_env_path_and_timeout_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_symlink_at_path_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_missing_directory_reports_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_invalid_arguments_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_cancel_completes_pending_once, setup, teardown),
        cmocka_unit_test_setup_teardown(hslock_cross_process_handshakes_never_overlap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hslock_holder_exit_releases, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
