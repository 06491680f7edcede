/* cdev_seq_nvs.c — the seq mark in NVS; see cdev_seq_nvs.h. */
#include "cdev_seq_nvs.h"

#include <string.h>

#define SEQ_KEY "seq_mark"

static int nvs_load(void *ctx, uint64_t *mark)
{
    struct cdev_seq_nvs *n = ctx;
    esp_err_t err = nvs_get_u64(n->handle, SEQ_KEY, mark);
    if (err == ESP_ERR_NVS_NOT_FOUND)
        return CDEV_ENOTFOUND;
    return err == ESP_OK ? CDEV_OK : CDEV_ESTORE;
}

static int nvs_save(void *ctx, uint64_t mark)
{
    struct cdev_seq_nvs *n = ctx;
    if (nvs_set_u64(n->handle, SEQ_KEY, mark) != ESP_OK || nvs_commit(n->handle) != ESP_OK)
        return CDEV_ESTORE;
    return CDEV_OK;
}

esp_err_t cdev_seq_nvs_open(struct cdev_seq_nvs *n, const char *namespace_name)
{
    memset(n, 0, sizeof *n);
    esp_err_t err = nvs_open(namespace_name, NVS_READWRITE, &n->handle);
    if (err != ESP_OK)
        return err;
    n->store.load = nvs_load;
    n->store.save = nvs_save;
    n->store.ctx = n;
    return ESP_OK;
}

void cdev_seq_nvs_close(struct cdev_seq_nvs *n)
{
    nvs_close(n->handle);
}
