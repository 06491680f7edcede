/* ingest_batch.c — the container of a request's readings and their outcomes. */
#include "ingest/ingest.h"

#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *reading_status_name(enum reading_status s)
{
    switch (s) {
    case READING_PENDING:
        return "pending";
    case READING_ACCEPTED:
        return "accepted";
    case READING_INVALID:
        return "invalid";
    case READING_DUPLICATE:
        return "duplicate";
    case READING_UNKNOWN_DEVICE:
        return "unknown_device";
    case READING_UNAVAILABLE:
        return "unavailable";
    }
    return "?";
}

void ingest_batch_init(struct ingest_batch *b)
{
    memset(b, 0, sizeof *b);
    arena_init(&b->arena, 1024);
}

void ingest_batch_free(struct ingest_batch *b)
{
    arena_free(&b->arena);
    b->readings = NULL;
    b->status = NULL;
    b->errors = NULL;
    b->n = 0;
}

void ingest_batch_size_for(struct ingest_batch *b, size_t body_len)
{
    /* Parsed readings take about twice their text (structs, names, results); one block of
     * that size holds the whole request, so a single reading costs a ~1 KB block, not 64 KB. */
    size_t want = body_len * 2 + 512;
    if (want > 32u << 20)
        want = 32u << 20;
    if (want > b->arena.block_size)
        b->arena.block_size = want;
}

int ingest_batch_reserve(struct ingest_batch *b, size_t n)
{

    b->readings = arena_calloc(&b->arena, n * sizeof *b->readings);
    b->status = arena_calloc(&b->arena, n * sizeof *b->status);
    b->errors = arena_calloc(&b->arena, n * sizeof *b->errors);
    if (b->readings == NULL || b->status == NULL || b->errors == NULL)
        return CANARY_ENOMEM;
    b->n = n;
    return CANARY_OK;
}

void ingest_batch_reject(struct ingest_batch *b, size_t i, const char *field, const char *fmt, ...)
{
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof buf)
        len = sizeof buf - 1;
    const char *reason = arena_strndup(&b->arena, buf, (size_t)len);
    const char *f = arena_strndup(&b->arena, field, strlen(field));
    b->status[i] = READING_INVALID;
    b->errors[i].field = f != NULL ? f : "";
    b->errors[i].reason = reason != NULL ? reason : "invalid reading";
}

void ingest_batch_flag_all(struct ingest_batch *b, uint32_t flag)
{
    for (size_t i = 0; i < b->n; i++)
        for (uint32_t k = 0; k < b->readings[i].n_values; k++)
            b->readings[i].values[k].flags |= flag;
}
