/* mitm_opts.c — the command-line options both man-in-the-middle proxies of `canary attack`
 * share (see mitm.h): where to listen and relay, the attacks, the ground truth, the draw's
 * seed and warm-up, the delay of `delay`. One parser, so the two proxies cannot drift apart in
 * names, ranges or messages. */
#include "cli/mitm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool mitm_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
        return false;
    *out = v;
    return true;
}

void mitm_opts_defaults(struct mitm_opts *o, bool http)
{
    memset(o, 0, sizeof *o);
    o->plan.delay_ms = 2000;
    o->plan.warmup = 2;
    o->plan.seed = 1;
    o->plan.http = http;
}

int mitm_common_option(struct mitm_opts *o, int opt, const char *arg, const char *who)
{
    char err[256];
    unsigned long long v;
    switch (opt) {
    case 'l':
        o->listen = arg;
        return 1;
    case 'u':
        o->upstream = arg;
        return 1;
    case 't':
        o->truth = arg;
        return 1;
    case 'f':
        o->port_file = arg;
        return 1;
    case 'q':
        o->quiet = true;
        return 1;
    case 'a':
        if (mitm_plan_add(&o->plan, arg, err, sizeof err) != 0) {
            fprintf(stderr, "canary attack %s: %s\n", who, err);
            return 2;
        }
        return 1;
    case 'd':
    case 'w':
    case 's': {
        unsigned long long max = opt == 's' ? UINT64_MAX : opt == 'd' ? 600000 : 1000000;
        if (!mitm_parse_uint(arg, max, &v)) {
            fprintf(stderr, "canary attack %s: --%s %s: out of range (0 to %llu)\n", who,
                    opt == 'd'   ? "delay-ms"
                    : opt == 'w' ? "warmup"
                                 : "seed",
                    arg, max);
            return 2;
        }
        if (opt == 'd')
            o->plan.delay_ms = (unsigned)v;
        else if (opt == 'w')
            o->plan.warmup = (unsigned)v;
        else
            o->plan.seed = v;
        return 1;
    }
    default:
        return 0;
    }
}

int mitm_common_check(const struct mitm_opts *o, int argc, char **argv, int first_operand,
                      const char *who)
{
    if (o->listen == NULL || o->upstream == NULL || o->truth == NULL) {
        fprintf(stderr, "canary attack %s: --listen, --upstream and --truth are required\n", who);
        return 2;
    }
    if (first_operand < argc) {
        fprintf(stderr, "canary attack %s: unexpected argument '%s'\n", who, argv[first_operand]);
        return 2;
    }
    return 0;
}
