#include "ibwire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------------------------------------
 * The integer parser
 */
/* Accumulates s[i..len) as an unsigned magnitude no larger than limit. */
static int parse_magnitude(const char *s, size_t i, size_t len, uint64_t limit, uint64_t *out)
{
    uint64_t acc = 0;

    if (i == len)
        return -1; /* empty, or a lone '-' */
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';

        if (d > 9 || acc > (limit - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    *out = acc;
    return 0;
}

int ibw_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (parse_magnitude(s, 0, len, UINT64_MAX, &v) < 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int ibw_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    uint64_t acc;
    int64_t v;

    /* The magnitude is unsigned so INT64_MIN needs no special case. */
    if (parse_magnitude(s, neg, len, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &acc) < 0)
        return -1;
    if (neg)
        v = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    else
        v = (int64_t)acc;
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Reader
 */
void ibw_reader_init(struct ibw_reader *r, const uint8_t *payload, size_t len)
{
    r->p = (const char *)payload;
    r->end = r->p + len;
    r->err = 0;
    r->index = 0;
}

unsigned ibw_reader_left(const struct ibw_reader *r)
{
    const char *p = r->p;
    unsigned n = 0;

    while (p < r->end) {
        const char *nul = memchr(p, '\0', (size_t)(r->end - p));

        n++;
        if (nul == NULL)
            break; /* an unterminated tail still counts as one (unreadable) field */
        p = nul + 1;
    }
    return n;
}

static int fail(struct ibw_reader *r, int err)
{
    r->err = err;
    return err;
}

/* Takes the next field: *s = its first byte, *len = its length without the NUL. */
static int next_field(struct ibw_reader *r, const char **s, size_t *len)
{
    const char *nul;

    if (r->err)
        return r->err;
    if (r->p >= r->end)
        return fail(r, IBW_ENOFIELD);
    nul = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (nul == NULL)
        return fail(r, IBW_EBADFIELD);
    *s = r->p;
    *len = (size_t)(nul - r->p);
    r->p = nul + 1;
    r->index++;
    return 0;
}

int ibw_read_str(struct ibw_reader *r, const char **s)
{
    const char *f;
    size_t len;
    int rc = next_field(r, &f, &len);

    if (rc)
        return rc;
    *s = f;
    return 0;
}

/* Empty reads as empty_value; anything else must be a whole integer in [min, max]. */
static int read_integer(struct ibw_reader *r, int64_t min, int64_t max, int64_t empty_value,
                        int64_t *v)
{
    const char *f;
    size_t len;
    int rc = next_field(r, &f, &len);

    if (rc)
        return rc;
    if (len == 0) {
        *v = empty_value;
        return 0;
    }
    if (ibw_parse_i64(f, len, min, max, v) != 0)
        return fail(r, IBW_EBADINT);
    return 0;
}

int ibw_read_int(struct ibw_reader *r, int *v)
{
    int64_t x;
    int rc = read_integer(r, INT32_MIN, INT32_MAX, 0, &x);

    if (rc == 0)
        *v = (int)x;
    return rc;
}

int ibw_read_int_max(struct ibw_reader *r, int *v)
{
    int64_t x;
    int rc = read_integer(r, INT32_MIN, INT32_MAX, IBW_UNSET_INT, &x);

    if (rc == 0)
        *v = (int)x;
    return rc;
}

int ibw_read_long(struct ibw_reader *r, int64_t *v)
{
    int64_t x;
    int rc = read_integer(r, INT64_MIN, INT64_MAX, 0, &x);

    if (rc == 0)
        *v = x;
    return rc;
}

int ibw_read_bool(struct ibw_reader *r, bool *v)
{
    int64_t x;
    int rc = read_integer(r, INT64_MIN, INT64_MAX, 0, &x);

    if (rc == 0)
        *v = x != 0;
    return rc;
}

int ibw_read_msg_id(struct ibw_reader *r, int *id)
{
    const char *f;
    size_t len;
    int64_t x;
    int rc = next_field(r, &f, &len);

    if (rc)
        return rc;
    /* Strict, unlike the lenient numeric fields: an empty or signed id is a broken frame. */
    if (len == 0 || f[0] == '-' || ibw_parse_i64(f, len, 0, INT32_MAX, &x) != 0)
        return fail(r, IBW_EBADMSGID);
    *id = (int)x;
    return 0;
}

/* True if s is a decimal literal: [-] digits [. digits] [(e|E) [+|-] digits], with at least one
 * mantissa digit on either side of the point. strtod() alone would also take hex floats,
 * "nan(...)", leading blanks and a leading '+', which no IB peer sends. */
static bool is_decimal_literal(const char *s)
{
    size_t digits = 0;

    if (*s == '-')
        s++;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static int read_dbl(struct ibw_reader *r, double empty_value, double *v)
{
    const char *f;
    char *end;
    size_t len;
    double x;
    int rc = next_field(r, &f, &len);

    if (rc)
        return rc;
    if (len == 0) {
        *v = empty_value;
        return 0;
    }
    /* Java spells infinity "Infinity"; ib_async sends "Infinite" (§1.2). */
    if (strcmp(f, "Infinity") == 0 || strcmp(f, "Infinite") == 0) {
        *v = INFINITY;
        return 0;
    }
    if (strcmp(f, "-Infinity") == 0 || strcmp(f, "-Infinite") == 0) {
        *v = -INFINITY;
        return 0;
    }
    if (strcmp(f, "NaN") == 0) { /* what ibw_put_double writes for NaN */
        *v = NAN;
        return 0;
    }
    if (!is_decimal_literal(f))
        return fail(r, IBW_EBADDOUBLE);
    errno = 0;
    x = strtod(f, &end);
    /* The whole field must be consumed (a locale with a ',' decimal point stops strtod at the
     * '.': reported, never misread). Overflow is an error; underflow to a subnormal or zero
     * is what Java's parseDouble returns too. */
    if (end != f + len || (errno == ERANGE && isinf(x)))
        return fail(r, IBW_EBADDOUBLE);
    *v = x;
    return 0;
}

int ibw_read_double(struct ibw_reader *r, double *v)
{
    return read_dbl(r, 0.0, v);
}

int ibw_read_double_max(struct ibw_reader *r, double *v)
{
    return read_dbl(r, IBW_UNSET_DOUBLE, v);
}

int ibw_read_skip(struct ibw_reader *r, unsigned n)
{
    const char *f;
    size_t len;

    while (n-- > 0) {
        int rc = next_field(r, &f, &len);

        if (rc)
            return rc;
    }
    return r->err;
}

int ibw_read_contract(struct ibw_reader *r, struct ibw_contract *c, bool with_primary_exchange)
{
    struct ibw_contract t;

    memset(&t, 0, sizeof t);
    ibw_read_long(r, &t.con_id);
    ibw_read_str(r, &t.symbol);
    ibw_read_str(r, &t.sec_type);
    ibw_read_str(r, &t.last_trade_date);
    ibw_read_double(r, &t.strike);
    ibw_read_str(r, &t.right);
    ibw_read_str(r, &t.multiplier);
    ibw_read_str(r, &t.exchange);
    if (with_primary_exchange)
        ibw_read_str(r, &t.primary_exchange);
    ibw_read_str(r, &t.currency);
    ibw_read_str(r, &t.local_symbol);
    ibw_read_str(r, &t.trading_class);
    if (r->err) /* sticky: the first failure is what every read above returned */
        return r->err;
    *c = t;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Writer
 */
void ibw_writer_init(struct ibw_writer *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->start = 0;
    w->err = 0;
    w->open = false;
}

void ibw_writer_begin(struct ibw_writer *w)
{
    if (w->err)
        return;
    if (w->open) {
        w->err = IBW_ESTATE;
        return;
    }
    if (w->cap - w->len < 4) {
        w->err = IBW_ENOSPC;
        return;
    }
    w->start = w->len;
    w->len += 4;
    w->open = true;
}

ssize_t ibw_writer_end(struct ibw_writer *w)
{
    size_t payload;

    if (!w->open) {
        if (w->err == 0)
            w->err = IBW_ESTATE;
        return w->err;
    }
    w->open = false;
    payload = w->len - w->start - 4;
    /* A frame the peer's parser would refuse is never emitted. */
    if (w->err == 0 && payload == 0)
        w->err = IBW_EZEROLEN;
    if (w->err == 0 && payload > IBW_MAX_FRAME)
        w->err = IBW_EMSGSIZE;
    if (w->err) {
        w->len = w->start; /* discard the failed frame, keep the earlier ones */
        return w->err;
    }
    ibw__store_be32(w->buf + w->start, (uint32_t)payload);
    return (ssize_t)(payload + 4);
}

/* Appends n bytes and the field's NUL, all or nothing. */
static void put_field(struct ibw_writer *w, const char *s, size_t n)
{
    if (w->err)
        return;
    if (!w->open) {
        w->err = IBW_ESTATE;
        return;
    }
    if (w->cap - w->len < n + 1 || n + 1 == 0) {
        w->err = IBW_ENOSPC;
        return;
    }
    if (n > 0)
        memcpy(w->buf + w->len, s, n);
    w->buf[w->len + n] = '\0';
    w->len += n + 1;
}

void ibw_put_str(struct ibw_writer *w, const char *s)
{
    if (s == NULL)
        s = "";
    put_field(w, s, strlen(s));
}

void ibw_put_int(struct ibw_writer *w, int64_t v)
{
    /* By hand: snprintf costs ~700 instructions per integer, and every frame carries several. */
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag > 0);
    if (v < 0)
        *--p = '-';
    put_field(w, p, (size_t)(tmp + sizeof tmp - p));
}

void ibw_put_int_max(struct ibw_writer *w, int64_t v)
{
    if (v == IBW_UNSET_INT || v == IBW_UNSET_LONG)
        put_field(w, "", 0);
    else
        ibw_put_int(w, v);
}

void ibw_put_double(struct ibw_writer *w, double v)
{
    char tmp[32];
    size_t n = ibw_format_double(v, tmp, sizeof tmp);

    put_field(w, tmp, n);
}

void ibw_put_double_max(struct ibw_writer *w, double v)
{
    if (v == IBW_UNSET_DOUBLE)
        put_field(w, "", 0);
    else
        ibw_put_double(w, v);
}

void ibw_put_bool(struct ibw_writer *w, bool v)
{
    put_field(w, v ? "1" : "0", 1);
}

/* ---------------------------------------------------------------------------------------------
 * Java Double.toString
 */

/* v's digits rounded to prec + 1 significant ones ("%.*e"): digits[] holds them without the
 * point and without trailing zeros, *exp10 is the decimal exponent of the first one (v = d.ddd x
 * 10^exp10). The digit count, or 0 if printf misbehaves; *exact tells whether they read back as
 * v. */
static size_t rounded_digits(double v, int prec, char digits[20], int *exp10, bool *exact)
{
    char tmp[40], *end;
    const char *p;
    size_t nd = 0;
    int64_t e;
    int n = snprintf(tmp, sizeof tmp, "%.*e", prec, v);

    if (n < 0 || (size_t)n >= sizeof tmp)
        return 0;
    *exact = strtod(tmp, &end) == v;
    /* "d[.ddd]e[+-]XX": the digits before 'e' (skipping the point, whatever the locale spells
     * it), then the exponent. */
    for (p = tmp; *p != '\0' && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9' && nd < 19)
            digits[nd++] = *p;
    }
    if (*p != 'e' || nd == 0)
        return 0;
    p++;
    if (*p == '+')
        p++;
    if (ibw_parse_i64(p, strlen(p), -400, 400, &e) != 0)
        return 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    *exp10 = (int)e;
    return nd;
}

/* Shortest significant digits of a finite, non-zero |v| that read back as v (as
 * rounded_digits() gives them). Returns the digit count, or 0 if printf misbehaves.
 *
 * Between 1e-300 and 1e300 (normal doubles, far from the ends) 15 digits decide it at once: any
 * decimal of at most 15 significant digits survives a trip through a double and back to 15
 * digits (DBL_DIG), so if the shortest has k <= 15 digits, v rounded to 15 is that decimal
 * padded with zeros, and if v rounded to 15 does not read back, no shorter one does. Else 16,
 * else 17 (always enough). Outside that range, every length from 1 is tried.
 *
 * Like Java's Double.toString (JDK 19+ specification), a one-digit result is replaced by the
 * closest two-digit decimal that still reads back as v: Double.MIN_VALUE is "4.9E-324", not
 * "5.0E-324". For every other value the two forms agree ("1.0E-4"). */
static size_t shortest_digits(double v, char digits[20], int *exp10)
{
    int prec = v >= 1e-300 && v <= 1e300 ? 14 : 0;

    for (; prec < 17; prec++) {
        bool exact;
        size_t nd = rounded_digits(v, prec, digits, exp10, &exact);

        if (nd == 0)
            return 0;
        if (!exact && prec < 16)
            continue; /* 17 significant digits always round-trip a double */
        if (nd == 1) {
            char two[20];
            int e2;
            size_t n2 = rounded_digits(v, 1, two, &e2, &exact);

            if (n2 > 0 && exact) {
                memcpy(digits, two, n2 + 1);
                *exp10 = e2;
                return n2;
            }
        }
        return nd;
    }
    return 0;
}

size_t ibw_format_double(double v, char *out, size_t cap)
{
    char tmp[40], digits[20];
    size_t nd, len = 0, i;
    int e, n;

    if (isnan(v)) {
        n = snprintf(tmp, sizeof tmp, "NaN");
    } else if (isinf(v)) {
        n = snprintf(tmp, sizeof tmp, "%s", v < 0 ? "-Infinity" : "Infinity");
    } else if (v == 0.0) {
        n = snprintf(tmp, sizeof tmp, "%s", signbit(v) ? "-0.0" : "0.0");
    } else {
        double a = v < 0 ? -v : v; /* zero is handled above; no libm in wire/ */

        nd = shortest_digits(a, digits, &e);
        if (nd == 0) {
            n = -1;
        } else {
            if (v < 0)
                tmp[len++] = '-';
            if (a >= 1e-3 && a < 1e7) {
                /* Plain notation with at least one fractional digit. */
                if (e < 0) {
                    tmp[len++] = '0';
                    tmp[len++] = '.';
                    for (i = 0; i < (size_t)(-e - 1); i++)
                        tmp[len++] = '0';
                    for (i = 0; i < nd; i++)
                        tmp[len++] = digits[i];
                } else {
                    for (i = 0; i <= (size_t)e; i++)
                        tmp[len++] = i < nd ? digits[i] : '0';
                    tmp[len++] = '.';
                    if (nd > (size_t)e + 1) {
                        for (i = (size_t)e + 1; i < nd; i++)
                            tmp[len++] = digits[i];
                    } else {
                        tmp[len++] = '0';
                    }
                }
                tmp[len] = '\0';
                n = (int)len;
            } else {
                /* Computerised scientific notation: d.ddd E exp, "1.0E-4". */
                n = snprintf(tmp + len, sizeof tmp - len, "%c.%sE%d", digits[0],
                             nd > 1 ? digits + 1 : "0", e);
                n = n < 0 ? -1 : n + (int)len;
            }
        }
    }
    if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    memcpy(out, tmp, (size_t)n + 1);
    return (size_t)n;
}
