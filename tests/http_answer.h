/* The harness's admin HTTP client, answered into a struct the tests inspect: shared by the
 * runner and probe tests. Include after harness.h. */
#ifndef MGW_TEST_HTTP_ANSWER_H
#define MGW_TEST_HTTP_ANSWER_H

#include <stdio.h>

struct http_answer {
    int calls, status, http_status;
    char body[8192];
};

/* A harness_http callback: counts the call, keeps the status, HTTP status and body. */
static inline void on_http_answer(struct harness_http *h, int status, int http_status,
                                  const char *body, size_t len, void *data)
{
    struct http_answer *a = data;

    (void)h;
    (void)len;
    a->calls++;
    a->status = status;
    a->http_status = http_status;
    snprintf(a->body, sizeof a->body, "%s", body != NULL ? body : "");
}

#endif /* MGW_TEST_HTTP_ANSWER_H */
