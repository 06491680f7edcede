/* model_latest.c — the latest gas prediction per device (model_latest.h): a string map per
 * stripe, each behind its own mutex. */
#include "models/model_latest.h"

#include "core/error.h"
#include "core/strmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 16 /* a power of two */

struct latest_entry {
    int64_t ts_ms;
    double proba[]; /* n_classes */
};

struct stripe {
    pthread_mutex_t lock;
    struct strmap map; /* device -> struct latest_entry * */
};

struct model_latest {
    size_t n_classes;
    struct stripe stripes[STRIPES];
};

static struct stripe *stripe_of(struct model_latest *t, const char *device)
{
    return &t->stripes[strmap_hash(device) & (STRIPES - 1)];
}

struct model_latest *model_latest_new(size_t n_classes)
{
    struct model_latest *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->n_classes = n_classes;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&t->stripes[i].lock, NULL);
        strmap_init(&t->stripes[i].map);
    }
    return t;
}

static void free_value(void *arg, const char *key, void *value)
{
    (void)arg;
    (void)key;
    free(value);
}

void model_latest_free(struct model_latest *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        strmap_each(&t->stripes[i].map, free_value, NULL);
        strmap_free(&t->stripes[i].map);
        pthread_mutex_destroy(&t->stripes[i].lock);
    }
    free(t);
}

int model_latest_put(struct model_latest *t, const char *device, int64_t ts_ms, const double *proba)
{
    struct stripe *s = stripe_of(t, device);
    int rc = CANARY_OK;
    pthread_mutex_lock(&s->lock);
    struct latest_entry *e = strmap_get(&s->map, device);
    if (e == NULL) {
        e = malloc(sizeof *e + t->n_classes * sizeof *e->proba);
        if (e == NULL || strmap_put(&s->map, device, e) != 0) {
            free(e);
            e = NULL;
            rc = CANARY_ENOMEM;
        }
    }
    if (e != NULL) {
        e->ts_ms = ts_ms;
        memcpy(e->proba, proba, t->n_classes * sizeof *proba);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

bool model_latest_get(struct model_latest *t, const char *device, int64_t *ts_ms, double *proba)
{
    struct stripe *s = stripe_of(t, device);
    pthread_mutex_lock(&s->lock);
    const struct latest_entry *e = strmap_get(&s->map, device);
    if (e != NULL) {
        *ts_ms = e->ts_ms;
        memcpy(proba, e->proba, t->n_classes * sizeof *proba);
    }
    pthread_mutex_unlock(&s->lock);
    return e != NULL;
}
