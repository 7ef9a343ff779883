#include "ibwire.h"

#include <errno.h>
#include <string.h>

/* Names of the errno values a socket program meets; anything else is "UNKNOWN". */
#define ERRNO_NAME_MAP(XX) \
    XX(EPERM)              \
    XX(ENOENT)             \
    XX(EINTR)              \
    XX(EIO)                \
    XX(EBADF)              \
    XX(EAGAIN)             \
    XX(ENOMEM)             \
    XX(EACCES)             \
    XX(EFAULT)             \
    XX(EBUSY)              \
    XX(EEXIST)             \
    XX(EINVAL)             \
    XX(EMFILE)             \
    XX(ENFILE)             \
    XX(ENOSPC)             \
    XX(EPIPE)              \
    XX(ERANGE)             \
    XX(ENOSYS)             \
    XX(ENOTSOCK)           \
    XX(EMSGSIZE)           \
    XX(EPROTO)             \
    XX(EADDRINUSE)         \
    XX(EADDRNOTAVAIL)      \
    XX(ENETDOWN)           \
    XX(ENETUNREACH)        \
    XX(ECONNABORTED)       \
    XX(ECONNRESET)         \
    XX(ENOBUFS)            \
    XX(EISCONN)            \
    XX(ENOTCONN)           \
    XX(ETIMEDOUT)          \
    XX(ECONNREFUSED)       \
    XX(EHOSTUNREACH)       \
    XX(EALREADY)           \
    XX(EINPROGRESS)        \
    XX(ECANCELED)

const char *ibw_strerror(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case IBW_##name:        \
        return msg;
        IBW_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err == 0)
        return "success";
    if (err < 0)
        return strerror(-err); /* glibc: never NULL, "Unknown error N" for strangers */
    return "unknown error";
}

const char *ibw_err_name(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case IBW_##name:        \
        return "IBW_" #name;
        IBW_ERRNO_MAP(XX)
#undef XX
#define XX(name)  \
    case -(name): \
        return #name;
        ERRNO_NAME_MAP(XX)
#undef XX
    case 0:
        return "OK";
    default:
        return "UNKNOWN";
    }
}
