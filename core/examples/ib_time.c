/* ib_time: connect to an IB gateway, print its server version and time, close.
 * Usage: ib_time [HOST [PORT [CLIENT_ID]]]   (defaults 127.0.0.1 4002 1)
 * The example program of docs/core.md, built and run by the e2e suite against mockgw. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "ibcore.h"

static int exit_code = 1;

static void on_time(struct ibcore_conn *c, int status, int64_t epoch_s, void *data)
{
    (void)data;
    if (status == 0) {
        printf("currentTime %lld\n", (long long)epoch_s);
        exit_code = 0;
    } else {
        fprintf(stderr, "ib_time: currentTime: %s\n", ibcore_strerror(status));
    }
    ibcore_conn_close(c, NULL, NULL);
}

static void on_ready(struct ibcore_conn *c, int status, void *loop)
{
    if (status != 0) {
        fprintf(stderr, "ib_time: connect: %s\n", ibcore_strerror(status));
        ibcore_conn_close(c, NULL, NULL); /* also frees after a failed connect */
        return;
    }
    printf("server version %d, client id %d, accounts %s\n", ibcore_conn_server_version(c),
           ibcore_conn_client_id(c), ibcore_conn_accounts(c));
    if (ibcore_conn_current_time(c, uv_now(loop) + 3000, on_time, NULL) != 0)
        ibcore_conn_close(c, NULL, NULL);
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    struct ibcore_conn_opts o;
    struct ibcore_conn *c;

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    ibcore_conn_opts_init(&o); /* 127.0.0.1:4002, client id 1, versions 100..178 */
    if (argc > 1)
        o.host = argv[1];
    if (argc > 2)
        o.port = atoi(argv[2]);
    if (argc > 3)
        o.client_id = atoi(argv[3]);
    c = ibcore_conn_new(&loop);
    if (!c)
        return 1;
    if (ibcore_conn_connect(c, &o, uv_now(&loop) + 10000, on_ready, &loop) != 0) {
        fprintf(stderr, "ib_time: bad host, port or client id\n");
        ibcore_conn_close(c, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        return 1;
    return exit_code;
}
