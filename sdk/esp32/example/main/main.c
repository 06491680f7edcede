/* main.c — canary ESP32 example: a DHT22 (temperature, humidity) and an MQ-2 (gas) read every
 * CONFIG_CANARY_INTERVAL_S seconds and published as signed readings to
 * <prefix>/<device>/up over esp-mqtt, the way docs/MQTT.md describes a device: client id and
 * broker user = the device id, will "offline" (retained) on <prefix>/<device>/status,
 * "online" once connected, QoS 1 readings.
 *
 * The SDK (component canary_device) does everything canary-specific: the reading's JSON, the
 * JWS HS256 signature with the key from `canary device add`, seqs that never repeat across
 * reboots (reserved in blocks in NVS), and ts from the clock only once SNTP has set it
 * (before that, readings go without ts and canaryd stamps them). This file is plumbing: Wi-Fi,
 * SNTP, MQTT and the sensors. It is not compiled by canary's build: see docs/SDK.md. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "canary_device.h"
#include "cdev_seq_nvs.h"
#include "dht22.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_netif_sntp.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/task.h"
#include "mq2.h"
#include "mqtt_client.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

static const char *TAG = "canary";

#define WIFI_UP BIT0
#define MQTT_UP BIT1
static EventGroupHandle_t net_events;

static void on_wifi(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    if (base == WIFI_EVENT && (id == WIFI_EVENT_STA_START || id == WIFI_EVENT_STA_DISCONNECTED)) {
        xEventGroupClearBits(net_events, WIFI_UP);
        esp_wifi_connect();
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        xEventGroupSetBits(net_events, WIFI_UP);
    }
}

static void wifi_start(void)
{
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(
        esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_wifi, NULL, NULL));
    ESP_ERROR_CHECK(
        esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_wifi, NULL, NULL));
    wifi_config_t wc = {0};
    snprintf((char *)wc.sta.ssid, sizeof wc.sta.ssid, "%s", CONFIG_CANARY_WIFI_SSID);
    snprintf((char *)wc.sta.password, sizeof wc.sta.password, "%s", CONFIG_CANARY_WIFI_PASSWORD);
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &wc));
    ESP_ERROR_CHECK(esp_wifi_start());
}

/* The SDK's clock hook: Unix ms once SNTP has set the clock, 0 before (no ts is sent). */
static int64_t wall_clock_ms(void *ctx)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec < 1700000000) /* before Nov 2023: the clock was never set */
        return 0;
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void on_mqtt(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    esp_mqtt_event_handle_t ev = data;
    const char *status_topic = arg;
    if (id == MQTT_EVENT_CONNECTED) {
        esp_mqtt_client_publish(ev->client, status_topic, "online", 0, 1, 1);
        xEventGroupSetBits(net_events, MQTT_UP);
    } else if (id == MQTT_EVENT_DISCONNECTED) {
        xEventGroupClearBits(net_events, MQTT_UP);
    }
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        /* Erasing NVS loses the seq mark: see docs/SDK.md, "After the storage was erased". */
        ESP_LOGW(TAG, "NVS erased: seq restarts; see docs/SDK.md");
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    net_events = xEventGroupCreate();

    /* The device: id, key, seq store, clock. Nothing is sent if any of it is wrong. */
    static struct cdev_seq_nvs seq_store;
    static struct cdev_device dev;
    ESP_ERROR_CHECK(cdev_seq_nvs_open(&seq_store, "canary"));
    int rc = cdev_device_init(&dev, CONFIG_CANARY_DEVICE_ID, CONFIG_CANARY_DEVICE_KEY,
                              &seq_store.store, CONFIG_CANARY_SEQ_BLOCK, 1, wall_clock_ms, NULL);
    if (rc != CDEV_OK) {
        ESP_LOGE(TAG, "device %s: %s (check the id and the 43-character key in menuconfig)",
                 CONFIG_CANARY_DEVICE_ID, cdev_error_name(rc));
        return;
    }

    wifi_start();
    esp_sntp_config_t sntp = ESP_NETIF_SNTP_DEFAULT_CONFIG("pool.ntp.org");
    esp_netif_sntp_init(&sntp);
    ESP_ERROR_CHECK(mq2_init(CONFIG_CANARY_MQ2_ADC_CHANNEL));

    static char up_topic[128], status_topic[128];
    snprintf(up_topic, sizeof up_topic, "%s/%s/up", CONFIG_CANARY_TOPIC_PREFIX,
             CONFIG_CANARY_DEVICE_ID);
    snprintf(status_topic, sizeof status_topic, "%s/%s/status", CONFIG_CANARY_TOPIC_PREFIX,
             CONFIG_CANARY_DEVICE_ID);
    esp_mqtt_client_config_t mc = {
        .broker.address.uri = CONFIG_CANARY_BROKER_URI,
        .credentials.client_id = CONFIG_CANARY_DEVICE_ID,
        .session.last_will = {.topic = status_topic, .msg = "offline", .qos = 1, .retain = 1},
    };
    if (strlen(CONFIG_CANARY_MQTT_PASSWORD) > 0) {
        mc.credentials.username = CONFIG_CANARY_DEVICE_ID;
        mc.credentials.authentication.password = CONFIG_CANARY_MQTT_PASSWORD;
    }
    esp_mqtt_client_handle_t client = esp_mqtt_client_init(&mc);
    esp_mqtt_client_register_event(client, ESP_EVENT_ANY_ID, on_mqtt, status_topic);
    xEventGroupWaitBits(net_events, WIFI_UP, pdFALSE, pdTRUE, portMAX_DELAY);
    esp_mqtt_client_start(client);

    for (;;) {
        vTaskDelay(pdMS_TO_TICKS(CONFIG_CANARY_INTERVAL_S * 1000));
        xEventGroupWaitBits(net_events, MQTT_UP, pdFALSE, pdTRUE, portMAX_DELAY);

        static char json[256], token[512];
        struct cdev_reading r;
        rc = cdev_device_begin(&dev, &r, json, sizeof json);
        if (rc != CDEV_OK) { /* CDEV_ESTORE: NVS refused the seq mark; retry next time */
            ESP_LOGE(TAG, "no seq: %s", cdev_error_name(rc));
            continue;
        }
        int16_t t_dc;
        uint16_t h_dpct;
        err = dht22_read(CONFIG_CANARY_DHT22_GPIO, &t_dc, &h_dpct);
        if (err == ESP_OK) {
            cdev_reading_add_fixed(&r, "temperature_c", t_dc, 1);
            cdev_reading_add_fixed(&r, "humidity_pct", h_dpct, 1);
        } else {
            ESP_LOGW(TAG, "DHT22: %s", esp_err_to_name(err));
        }
        int gas_mv;
        double gas_ppm;
        if (mq2_read(&gas_mv, &gas_ppm) == ESP_OK) {
            cdev_reading_add_fixed(&r, "gas_mv", gas_mv, 0);
            /* NaN (no sensor output) is refused by the SDK and left out. */
            if (cdev_reading_add(&r, "gas_ppm", gas_ppm) != CDEV_OK)
                ESP_LOGW(TAG, "MQ-2: no usable output (%d mV)", gas_mv);
        }
        long n = cdev_device_sign(&dev, &r, token, sizeof token);
        if (n < 0) { /* CDEV_EEMPTY: every sensor failed; the seq is simply skipped */
            ESP_LOGW(TAG, "seq %llu not sent: %s", (unsigned long long)r.seq,
                     cdev_error_name((int)n));
            continue;
        }
        int mid = esp_mqtt_client_publish(client, up_topic, token, (int)n, 1, 0);
        ESP_LOGI(TAG, "seq %llu: %s (msg %d)", (unsigned long long)r.seq, json, mid);
    }
}
