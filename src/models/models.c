/* models.c — the holder of the current model set and its reload (models.h). The pointer to
 * the current set is swapped under a mutex held only for the swap and for taking a
 * reference; loading a new set happens outside it, so scoring never waits for a reload. */
#include "models/models.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct models {
    pthread_mutex_t lock;        /* guards current and status */
    pthread_mutex_t reload_lock; /* one reload at a time */
    struct model_set *current;
    _Atomic uint64_t generation;
    struct models_status status;
    models_config_fn config_fn;
    void *config_arg;
    struct canary_config start; /* the model definitions at start (when no source is set) */
};

int models_create(struct models **out, const struct canary_config *cfg, char *err, size_t errlen)
{
    struct models *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    int rc = model_set_load(&m->current, cfg, 1, err, errlen);
    if (rc != 0) {
        free(m);
        return rc;
    }
    /* Keep a copy of the definitions for reloads without a configuration source. */
    if (config_copy(&m->start, cfg) != 0) {
        model_set_release(m->current);
        free(m);
        snprintf(err, errlen, "out of memory");
        return CANARY_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->reload_lock, NULL);
    atomic_init(&m->generation, 1);
    for (size_t i = 0; i < m->current->n; i++) {
        const struct model_entry *e = &m->current->entries[i];
        log_info("models.loaded", "model=%s type=%s path=%s features=%zu threshold=%.4f", e->name,
                 e->type == MODEL_GAS ? "gas" : "iforest", e->def.path, e->n_features,
                 e->threshold);
    }
    *out = m;
    return CANARY_OK;
}

void models_free(struct models *m)
{
    if (m == NULL)
        return;
    model_set_release(m->current);
    config_free(&m->start);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->reload_lock);
    free(m);
}

struct model_set *models_acquire(struct models *m)
{
    pthread_mutex_lock(&m->lock);
    struct model_set *s = m->current;
    model_set_retain(s);
    pthread_mutex_unlock(&m->lock);
    return s;
}

uint64_t models_generation(struct models *m)
{
    return atomic_load_explicit(&m->generation, memory_order_acquire);
}

void models_set_config_source(struct models *m, models_config_fn fn, void *arg)
{
    m->config_fn = fn;
    m->config_arg = arg;
}

static void record(struct models *m, int rc, const char *err)
{
    pthread_mutex_lock(&m->lock);
    m->status.reloads++;
    m->status.last_reload_ms = clock_wall_ms();
    if (rc != 0) {
        m->status.reload_failures++;
        snprintf(m->status.last_error, sizeof m->status.last_error, "%s", err);
    } else {
        m->status.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&m->lock);
}

int models_reload(struct models *m, char *err, size_t errlen)
{
    pthread_mutex_lock(&m->reload_lock);
    struct canary_config fresh;
    config_init(&fresh);
    int rc = CANARY_OK;
    const struct canary_config *defs = &m->start;
    if (m->config_fn != NULL) {
        rc = m->config_fn(m->config_arg, &fresh, err, errlen);
        defs = &fresh;
    }
    struct model_set *next = NULL;
    uint64_t gen = models_generation(m) + 1;
    if (rc == 0)
        rc = model_set_load(&next, defs, gen, err, errlen);
    if (rc == 0) {
        pthread_mutex_lock(&m->lock);
        struct model_set *old = m->current;
        m->current = next;
        atomic_store_explicit(&m->generation, gen, memory_order_release);
        pthread_mutex_unlock(&m->lock);
        model_set_release(old);
        log_info("models.reloaded", "generation=%llu models=%zu", (unsigned long long)gen, next->n);
    } else {
        log_warn("models.reload_failed", "error=\"%s\" action=kept_current", err);
    }
    record(m, rc, err);
    config_free(&fresh);
    pthread_mutex_unlock(&m->reload_lock);
    return rc;
}

void models_status(struct models *m, struct models_status *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->status;
    pthread_mutex_unlock(&m->lock);
}
