#include "ibcore.h"

#include "ibwire.h"

const char *ibcore_strerror(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case IBCORE_##name:     \
        return msg;
        IBCORE_ERRNO_MAP(XX)
#undef XX
    }
    if (err <= -5100 && err > -5200)
        return ibw_strerror(err);
    return uv_strerror(err);
}

const char *ibcore_err_name(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case IBCORE_##name:     \
        return "IBCORE_" #name;
        IBCORE_ERRNO_MAP(XX)
#undef XX
    }
    if (err <= -5100 && err > -5200)
        return ibw_err_name(err);
    return uv_err_name(err);
}
