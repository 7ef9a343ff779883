/* The CLOSE_WAIT detector: the /proc/net/tcp parser on synthetic text, then real CLOSE_WAIT
 * sockets on loopback, our own and another process's. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "ibcore.h"
#include "internal.h"

static const char tcp4_header[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode                                                     \n";

/* 4002 = 0x0FA2, 14002 = 0x36B2, 40021 = 0x9C55, 400 = 0x0190. */
static void parse_text(const char *text, int port, const unsigned long *own, size_t n_own,
                       struct ibcore_zombies *z)
{
    size_t len = strlen(text);
    char *copy = malloc(len + 1); /* exact size: ASan sees any over-read */
    FILE *f;

    assert_non_null(copy);
    memcpy(copy, text, len + 1);
    f = fmemopen(copy, len, "r");
    assert_non_null(f);
    memset(z, 0, sizeof *z);
    assert_int_equal(ibcore__zombie_parse(f, port, own, n_own, z), 0);
    fclose(f);
    free(copy);
}

static void zombie_parse_exact_port_not_substring(void **state)
{
    static const unsigned long own[] = { 111, 333 };
    char text[4096];
    struct ibcore_zombies z;

    (void)state;
    snprintf(text, sizeof text, "%s%s", tcp4_header,
             /* ours, CLOSE_WAIT to 4002 */
             "   0: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 111 1 0000000000000000 20 4 30 10 -1                     \n"
             /* 14002, 40021 and 400 must not match 4002 */
             "   1: 0100007F:A1B3 0100007F:36B2 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 222 1 0000000000000000 20 4 30 10 -1                     \n"
             "   2: 0100007F:A1B4 0100007F:9C55 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 224 1 0000000000000000 20 4 30 10 -1                     \n"
             "   3: 0100007F:A1B5 0100007F:0190 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 225 1 0000000000000000 20 4 30 10 -1                     \n"
             /* the local port is 4002 (we are the gateway side): not a client zombie */
             "   4: 0100007F:0FA2 0100007F:A1B6 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 226 1 0000000000000000 20 4 30 10 -1                     \n"
             /* ESTABLISHED (01) and LAST_ACK (09) to 4002: not CLOSE_WAIT */
             "   5: 0100007F:A1B7 0100007F:0FA2 01 00000000:00000000 00:00000000 00000000  1000 "
             "       0 333 1 0000000000000000 20 4 30 10 -1                     \n"
             "   6: 0100007F:A1B8 0100007F:0FA2 09 00000000:00000000 00:00000000 00000000  1000 "
             "       0 334 1 0000000000000000 20 4 30 10 -1                     \n"
             /* someone else's, and an orphan (inode 0): foreign */
             "   7: 0100007F:A1B9 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 999 1 0000000000000000 20 4 30 10 -1                     \n"
             "   8: 0100007F:A1BA 0100007F:0fa2 08 00000000:00000000 00:00000000 00000000  1000 "
             "       0 0 1 0000000000000000 20 4 30 10 -1                     \n");
    parse_text(text, 4002, own, 2, &z);
    assert_int_equal(z.own, 1);
    assert_int_equal(z.foreign, 2);
    assert_int_equal(z.own_inodes[0], 111);

    parse_text(text, 14002, own, 2, &z);
    assert_int_equal(z.own, 0);
    assert_int_equal(z.foreign, 1);
    parse_text(text, 400, own, 2, &z);
    assert_int_equal(z.own + z.foreign, 1);
    parse_text(text, 40, own, 2, &z);
    assert_int_equal(z.own + z.foreign, 0);
}

static void zombie_parse_ipv6_lines(void **state)
{
    static const unsigned long own[] = { 4242 };
    struct ibcore_zombies z;

    (void)state;
    parse_text("  sl  local_address                         remote_address                      "
               "  st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
               "   0: 00000000000000000000000001000000:C350 00000000000000000000000001000000:0FA2 "
               "08 00000000:00000000 00:00000000 00000000  1000        0 4242 1 "
               "0000000000000000 20 4 30 10 -1\n"
               "   1: 0000000000000000FFFF00000100007F:C351 0000000000000000FFFF00000100007F:0FA2 "
               "08 00000000:00000000 00:00000000 00000000  1000        0 4243 1 "
               "0000000000000000 20 4 30 10 -1\n",
               4002, own, 1, &z);
    assert_int_equal(z.own, 1);
    assert_int_equal(z.foreign, 1);
    assert_int_equal(z.own_inodes[0], 4242);
}

static void zombie_parse_skips_malformed_lines(void **state)
{
    static const char *const bad[] = {
        "",
        "\n",
        "garbage\n",
        "   0:\n",
        /* too few fields */
        "   0: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0\n",
        /* sl not "N:" */
        "   x: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0  0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        /* address: short, long, no colon, non-hex, 3- or 5-digit port */
        "   0: 0100007:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F0:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007FX0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007G:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F:FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F:0FA22 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F:0FAZ 08 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        /* state: 1 or 3 digits, non-hex */
        "   0: 0100007F:A1B2 0100007F:0FA2 8 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F:0FA2 008 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        "   0: 0100007F:A1B2 0100007F:0FA2 0g 00000000:00000000 00:00000000 00000000 1000 0 7\n",
        /* inode: signed, hex, overflowing */
        "   0: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 -7\n",
        "   0: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7x\n",
        ("   0: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 "
         "999999999999999999999999\n"),
    };
    static const char good[] =
        "   9: 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n";
    static const unsigned long own[] = { 7 };
    char text[8192];
    struct ibcore_zombies z;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parse_text(bad[i], 4002, own, 1, &z);
        assert_int_equal(z.own + z.foreign, 0);
        /* A bad line costs itself only: the good line after it still counts. */
        snprintf(text, sizeof text, "%s%s%s", bad[i],
                 bad[i][0] != '\0' && bad[i][strlen(bad[i]) - 1] == '\n' ? "" : "\n", good);
        parse_text(text, 4002, own, 1, &z);
        assert_int_equal(z.own, 1);
        assert_int_equal(z.foreign, 0);
    }
    /* The last line may lack its newline. */
    parse_text("   9: 0100007F:A1B2 0100007F:0FA2 08 0:0 0:0 0 1000 0 7", 4002, own, 1, &z);
    assert_int_equal(z.own, 1);
}

static void zombie_parse_skips_overlong_lines_whole(void **state)
{
    static const char tail[] =
        " 0100007F:A1B2 0100007F:0FA2 08 00000000:00000000 00:00000000 00000000 1000 0 7\n";
    static const unsigned long own[] = { 7 };
    static const char good[] = "   9: 0100007F:A1B2 0100007F:0FA2 08 0:0 0:0 0 1000 0 7\n";
    size_t pad = 5000, len = 3 + pad + sizeof tail - 1;
    char *text = malloc(len + sizeof good);
    struct ibcore_zombies z;

    (void)state;
    assert_non_null(text);
    /* A line much longer than any /proc line whose tail looks valid: never counted. */
    memcpy(text, "0: ", 3);
    memset(text + 3, 'A', pad);
    memcpy(text + 3 + pad, tail, sizeof tail);
    parse_text(text, 4002, own, 1, &z);
    assert_int_equal(z.own + z.foreign, 0);
    memcpy(text + len, good, sizeof good);
    parse_text(text, 4002, own, 1, &z);
    assert_int_equal(z.own, 1);
    free(text);
}

/* The kernel may repeat an entry across its page-sized reads when the hash bucket changes. */
static void zombie_parse_counts_repeated_inode_once(void **state)
{
    static const char own_line[] = "   0: 0100007F:A1B2 0100007F:0FA2 08 0:0 0:0 0 1000 0 7\n";
    static const char foreign_line[] = "   1: 0100007F:A1B3 0100007F:0FA2 08 0:0 0:0 0 1000 0 8\n";
    static const char orphan_line[] = "   2: 0100007F:A1B4 0100007F:0FA2 08 0:0 0:0 0 1000 0 0\n";
    static const unsigned long own[] = { 7 };
    char text[1024];
    struct ibcore_zombies z;

    (void)state;
    snprintf(text, sizeof text, "%s%s%s%s%s%s%s", own_line, foreign_line, own_line, orphan_line,
             foreign_line, orphan_line, own_line);
    parse_text(text, 4002, own, 1, &z);
    assert_int_equal(z.own, 1);
    assert_int_equal(z.own_inodes[0], 7);
    assert_int_equal(z.own_inodes[1], 0);
    assert_int_equal(z.foreign, 3); /* inode 8 once; orphans (inode 0) cannot be told apart */
}

static void zombie_parse_keeps_first_64_own_inodes(void **state)
{
    unsigned long own[70];
    char *text = malloc(70 * 128 + 1);
    struct ibcore_zombies z;
    size_t i, off = 0;

    (void)state;
    assert_non_null(text);
    for (i = 0; i < 70; i++) {
        own[i] = 1000 + i;
        off += (size_t)snprintf(text + off, 128,
                                "%4zu: 0100007F:%04zX 0100007F:0FA2 08 0:0 0:0 0 1000 0 %lu\n", i,
                                0x8000 + i, own[i]);
    }
    parse_text(text, 4002, own, 70, &z);
    assert_int_equal(z.own, 70);
    assert_int_equal(z.foreign, 0);
    for (i = 0; i < 64; i++)
        assert_int_equal(z.own_inodes[i], 1000 + i);
    free(text);
}

/* --- real sockets ------------------------------------------------------------------------- */

struct close_wait {
    int listener, client;
    int port;
};

static int tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    return fd;
}

/* listen on 127.0.0.1:0, connect, accept, close the accepted side: the client socket receives
 * the FIN and sits in CLOSE_WAIT with remote port = the listener's port. */
static bool make_close_wait(struct close_wait *cw)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    struct pollfd pfd;
    int server;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cw->listener = tcp_socket();
    if (bind(cw->listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(cw->listener, 4) != 0 ||
        getsockname(cw->listener, (struct sockaddr *)&a, &alen) != 0)
        return false;
    cw->port = ntohs(a.sin_port);
    cw->client = tcp_socket();
    if (connect(cw->client, (struct sockaddr *)&a, sizeof a) != 0)
        return false;
    server = accept4(cw->listener, NULL, NULL, SOCK_CLOEXEC);
    if (server < 0)
        return false;
    close(server);
    /* Wait (bounded) until the FIN has arrived: then the state is CLOSE_WAIT. */
    pfd.fd = cw->client;
    pfd.events = POLLRDHUP;
    return poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLRDHUP);
}

static void zombie_scan_finds_own_close_wait(void **state)
{
    struct close_wait cw;
    struct ibcore_zombies z;

    (void)state;
    assert_true(make_close_wait(&cw));
    assert_int_equal(ibcore_zombie_scan(cw.port, &z), 0);
    assert_int_equal(z.own, 1);
    assert_int_equal(z.foreign, 0);
    assert_true(ibcore_zombie_fd_is(&z, cw.client));
    assert_false(ibcore_zombie_fd_is(&z, cw.listener)); /* a socket, but not a zombie */
    assert_false(ibcore_zombie_fd_is(&z, -1));
    assert_false(ibcore_zombie_fd_is(NULL, cw.client));

    close(cw.client);
    assert_int_equal(ibcore_zombie_scan(cw.port, &z), 0);
    assert_int_equal(z.own + z.foreign, 0);
    close(cw.listener);
}

static void zombie_scan_rejects_bad_arguments(void **state)
{
    struct ibcore_zombies z;

    (void)state;
    assert_int_equal(ibcore_zombie_scan(0, &z), UV_EINVAL);
    assert_int_equal(ibcore_zombie_scan(65536, &z), UV_EINVAL);
    assert_int_equal(ibcore_zombie_scan(-4002, &z), UV_EINVAL);
    assert_int_equal(ibcore_zombie_scan(4002, NULL), UV_EINVAL);
}

static void zombie_fd_is_false_for_non_sockets(void **state)
{
    struct ibcore_zombies z = { .own = 1 };
    int p[2];
    struct stat st;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fstat(p[0], &st), 0);
    z.own_inodes[0] = (unsigned long)st.st_ino; /* same inode number, but not a socket */
    assert_false(ibcore_zombie_fd_is(&z, p[0]));
    close(p[0]);
    close(p[1]);
}

static void zombie_scan_counts_foreign_close_wait(void **state)
{
    struct ibcore_zombies z;
    int up[2], down[2], port, status;
    char c;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe2(up, O_CLOEXEC), 0);
    assert_int_equal(pipe2(down, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct close_wait cw;

        close(up[0]);
        close(down[1]);
        port = make_close_wait(&cw) ? cw.port : -1;
        if (write(up[1], &port, sizeof port) != (ssize_t)sizeof port)
            _exit(2);
        while (read(down[0], &c, 1) > 0) /* until the parent closes its end */
            ;
        _exit(port > 0 ? 0 : 1);
    }
    close(up[1]);
    close(down[0]);
    assert_int_equal(read(up[0], &port, sizeof port), (ssize_t)sizeof port);
    close(up[0]);
    assert_true(port > 0);
    assert_int_equal(ibcore_zombie_scan(port, &z), 0);
    assert_true(z.foreign >= 1);
    assert_int_equal(z.own, 0);

    close(down[1]); /* the child exits when its pipe closes */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zombie_parse_exact_port_not_substring),
        cmocka_unit_test(zombie_parse_ipv6_lines),
        cmocka_unit_test(zombie_parse_skips_malformed_lines),
        cmocka_unit_test(zombie_parse_skips_overlong_lines_whole),
        cmocka_unit_test(zombie_parse_counts_repeated_inode_once),
        cmocka_unit_test(zombie_parse_keeps_first_64_own_inodes),
        cmocka_unit_test(zombie_scan_finds_own_close_wait),
        cmocka_unit_test(zombie_scan_rejects_bad_arguments),
        cmocka_unit_test(zombie_fd_is_false_for_non_sockets),
        cmocka_unit_test(zombie_scan_counts_foreign_close_wait),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
