#include "ibwire.h"

#include <stddef.h>

const char *ibw_in_name(int id)
{
    switch (id) {
#define XX(name, num, str) \
    case (num):            \
        return str;
        IBW_IN_MSG_MAP(XX)
#undef XX
    default:
        return NULL;
    }
}

const char *ibw_out_name(int id)
{
    switch (id) {
#define XX(name, num, str) \
    case (num):            \
        return str;
        IBW_OUT_MSG_MAP(XX)
#undef XX
    default:
        return NULL;
    }
}
