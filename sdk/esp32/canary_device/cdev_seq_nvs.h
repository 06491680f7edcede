/* cdev_seq_nvs.h — the seq mark in ESP-IDF's NVS (non-volatile storage), for the device SDK.
 *
 * One u64 entry ("seq_mark") in a namespace of the caller's choice. NVS writes an entry
 * atomically with respect to power loss (it keeps the old entry until the new one is
 * complete), which is the all-or-nothing save struct cdev_seq_store demands; each save is
 * followed by nvs_commit. With the default block of 100 seqs a device sending every 10 s
 * writes NVS about 3 times an hour. Call nvs_flash_init() before opening. */
#ifndef CANARY_SEQ_NVS_H
#define CANARY_SEQ_NVS_H

#include "canary_device.h"

#include "esp_err.h"
#include "nvs.h"

struct cdev_seq_nvs {
    nvs_handle_t handle;
    struct cdev_seq_store store; /* hand &store to cdev_device_init */
};

/* Opens namespace (e.g. "canary") read-write. Returns ESP_OK or NVS's error. */
esp_err_t cdev_seq_nvs_open(struct cdev_seq_nvs *n, const char *namespace_name);

void cdev_seq_nvs_close(struct cdev_seq_nvs *n);

#endif
