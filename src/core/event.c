/* event.c — names of event categories; see event.h. */
#include "core/event.h"

#include <string.h>

const char *event_category_name(enum event_category c)
{
    return c == EVENT_SECURITY ? "security" : "ingest";
}

int event_category_parse(const char *s, enum event_category *out)
{
    if (strcmp(s, "security") == 0)
        *out = EVENT_SECURITY;
    else if (strcmp(s, "ingest") == 0)
        *out = EVENT_INGEST;
    else
        return -1;
    return 0;
}
