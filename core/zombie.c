/* The CLOSE_WAIT detector: reads /proc/net/tcp{,6}, attributes sockets to this process through
 * /proc/self/fd. Never runs netstat or lsof, never connects, never signals anyone. */
#include "ibcore.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "internal.h"

#define LINE_CAP       512        /* a tcp6 line is ~180 bytes; longer ones are skipped whole */
#define OWN_INODES_CAP (1u << 20) /* sockets beyond this many fds count as foreign */
#define ST_CLOSE_WAIT  0x08
#define SEEN_CAP       65536u /* CLOSE_WAIT inodes deduplicated per file */
#define MIN_FIELDS     10     /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */

struct field {
    const char *p;
    size_t len;
};

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Exactly len (1..8) hex digits. */
static bool parse_hex(const char *s, size_t len, unsigned long *out)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0 || len > 8)
        return false;
    for (i = 0; i < len; i++) {
        int d = hex_digit(s[i]);

        if (d < 0)
            return false;
        v = v << 4 | (unsigned long)d;
    }
    *out = v;
    return true;
}

static bool all_hex(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (hex_digit(s[i]) < 0)
            return false;
    }
    return true;
}

/* Whole field, decimal, no sign, no overflow. */
static bool parse_dec(const char *s, size_t len, unsigned long *out)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return false;
        d = (unsigned)(s[i] - '0');
        if (v > (ULONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "0100007F:0FA2" (IPv4, 8 hex digits) or 32 hex digits (IPv6), ':', 4 hex digits of port. */
static bool parse_port(const struct field *f, unsigned long *port)
{
    size_t addr_len = f->len - 5;

    if (f->len != 8 + 5 && f->len != 32 + 5)
        return false;
    if (f->p[addr_len] != ':' || !all_hex(f->p, addr_len))
        return false;
    return parse_hex(f->p + addr_len + 1, 4, port);
}

/* Splits on spaces; returns the number of fields (at most max). */
static size_t split(const char *s, size_t len, struct field *f, size_t max)
{
    size_t n = 0, i = 0;

    while (i < len && n < max) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        f[n].p = s + i;
        while (i < len && s[i] != ' ')
            i++;
        f[n].len = (size_t)(s + i - f[n].p);
        n++;
    }
    return n;
}

static int cmp_inode(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

    return (x > y) - (x < y);
}

/* The inodes counted so far in one stream, sorted. The kernel produces /proc/net/tcp a page per
 * read() and resumes by (hash bucket, offset): a socket inserted into or removed from that bucket
 * between two reads makes it repeat (or skip) an entry. Repeats are dropped here. */
struct seen {
    unsigned long *v;
    size_t n, cap;
};

/* *is_new: inode was not seen before (it is recorded now). Past SEEN_CAP nothing is recorded. */
static int seen_add(struct seen *s, unsigned long inode, bool *is_new)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->v[mid] < inode)
            lo = mid + 1;
        else
            hi = mid;
    }
    *is_new = lo == s->n || s->v[lo] != inode;
    if (!*is_new)
        return 0;
    if (s->n == s->cap) {
        size_t ncap = s->cap == 0 ? 16 : s->cap * 2;
        unsigned long *nv;

        if (ncap > SEEN_CAP)
            return 0;
        nv = realloc(s->v, ncap * sizeof *nv);
        if (nv == NULL)
            return UV_ENOMEM;
        s->v = nv;
        s->cap = ncap;
    }
    memmove(s->v + lo + 1, s->v + lo, (s->n - lo) * sizeof *s->v);
    s->v[lo] = inode;
    s->n++;
    return 0;
}

static int count_line(const char *s, size_t len, int port, const unsigned long *own, size_t n_own,
                      struct seen *seen, struct ibcore_zombies *z)
{
    struct field f[MIN_FIELDS];
    unsigned long sl, rem_port, local_port, st, inode;
    bool is_new;
    int r;

    if (split(s, len, f, MIN_FIELDS) < MIN_FIELDS)
        return 0;
    /* "12:": the slot number; this also skips the header line ("sl  local_address ..."). */
    if (f[0].len < 2 || f[0].p[f[0].len - 1] != ':' || !parse_dec(f[0].p, f[0].len - 1, &sl))
        return 0;
    if (!parse_port(&f[1], &local_port) || !parse_port(&f[2], &rem_port))
        return 0;
    if (f[3].len != 2 || !parse_hex(f[3].p, 2, &st))
        return 0;
    if (!parse_dec(f[9].p, f[9].len, &inode))
        return 0;
    if (st != ST_CLOSE_WAIT || rem_port != (unsigned long)port)
        return 0;
    if (inode != 0) {
        r = seen_add(seen, inode, &is_new);
        if (r < 0 || !is_new)
            return r;
    }
    /* Inode 0 (an orphaned socket) is nobody's we can name: foreign. */
    if (inode != 0 && n_own > 0 && bsearch(&inode, own, n_own, sizeof *own, cmp_inode) != NULL) {
        if (z->own < sizeof z->own_inodes / sizeof z->own_inodes[0])
            z->own_inodes[z->own] = inode;
        z->own++;
    } else {
        z->foreign++;
    }
    return 0;
}

int ibcore__zombie_parse(FILE *f, int port, const unsigned long *own, size_t n_own,
                         struct ibcore_zombies *z)
{
    struct seen seen = { NULL, 0, 0 };
    char line[LINE_CAP];
    int r = 0;

    while (r == 0 && fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);

        if (len > 0 && line[len - 1] == '\n') {
            len--;
        } else if (!feof(f)) {
            int c;

            /* Longer than any real line: skip the rest of it, and the line itself. */
            while ((c = getc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        r = count_line(line, len, port, own, n_own, &seen, z);
    }
    free(seen.v);
    if (r == 0 && ferror(f))
        r = UV_EIO;
    return r;
}

/* The sorted inodes of this process's sockets, from readlink(/proc/self/fd/N) = "socket:[N]". */
static int own_socket_inodes(unsigned long **out, size_t *n_out)
{
    unsigned long *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    DIR *d;

    d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        static const char prefix[] = "socket:[";
        char target[64];
        unsigned long inode;
        ssize_t len;

        len = readlinkat(dirfd(d), e->d_name, target, sizeof target);
        if (len <= (ssize_t)(sizeof prefix - 1) + 1 || (size_t)len >= sizeof target)
            continue; /* ".", "..", a vanished fd, or not a socket */
        if (memcmp(target, prefix, sizeof prefix - 1) != 0 || target[len - 1] != ']')
            continue;
        if (!parse_dec(target + sizeof prefix - 1, (size_t)len - sizeof prefix, &inode))
            continue;
        if (n == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            unsigned long *nv;

            if (ncap > OWN_INODES_CAP)
                break;
            nv = realloc(v, ncap * sizeof *v);
            if (nv == NULL) {
                free(v);
                closedir(d);
                return UV_ENOMEM;
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = inode;
    }
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof *v, cmp_inode);
    *out = v;
    *n_out = n;
    return 0;
}

static int parse_file(const char *path, bool must_exist, int port, const unsigned long *own,
                      size_t n_own, struct ibcore_zombies *z)
{
    FILE *f = fopen(path, "re");
    int r;

    if (f == NULL)
        return errno == ENOENT && !must_exist ? 0 : -errno;
    r = ibcore__zombie_parse(f, port, own, n_own, z);
    fclose(f);
    return r;
}

int ibcore_zombie_scan(int port, struct ibcore_zombies *z)
{
    unsigned long *own = NULL;
    size_t n_own = 0;
    int r;

    if (z == NULL || port < 1 || port > 65535)
        return UV_EINVAL;
    memset(z, 0, sizeof *z);
    r = own_socket_inodes(&own, &n_own);
    if (r < 0)
        return r;
    r = parse_file("/proc/net/tcp", true, port, own, n_own, z);
    if (r == 0) /* absent when IPv6 is disabled: nothing to count there */
        r = parse_file("/proc/net/tcp6", false, port, own, n_own, z);
    free(own);
    if (r < 0)
        memset(z, 0, sizeof *z);
    return r;
}

bool ibcore_zombie_fd_is(const struct ibcore_zombies *z, int fd)
{
    size_t i, n;
    struct stat st;

    if (z == NULL || fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    n = z->own < sizeof z->own_inodes / sizeof z->own_inodes[0]
            ? z->own
            : sizeof z->own_inodes / sizeof z->own_inodes[0];
    for (i = 0; i < n; i++) {
        if (z->own_inodes[i] == (unsigned long)st.st_ino)
            return true;
    }
    return false;
}
