/* dht22.c — DHT22 over its one-wire protocol; see dht22.h.
 *
 * The host pulls the line low for >= 1 ms to start, then releases it; the sensor answers
 * 80 us low, 80 us high, and sends 40 bits, each 50 us low followed by 26-28 us high (0) or
 * 70 us high (1): humidity (16 bits), temperature (16 bits, top bit = sign), checksum (the
 * low byte of the sum of the four). The bits are timed with interrupts off (about 5 ms). */
#include "dht22.h"

#include "driver/gpio.h"
#include "esp_rom_sys.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"

static portMUX_TYPE dht_mux = portMUX_INITIALIZER_UNLOCKED;

/* Waits while the line is at level; returns the microseconds waited, or -1 after timeout_us. */
static int wait_while(int gpio, int level, int timeout_us)
{
    int64_t start = esp_timer_get_time();
    while (gpio_get_level(gpio) == level) {
        if (esp_timer_get_time() - start > timeout_us)
            return -1;
    }
    return (int)(esp_timer_get_time() - start);
}

esp_err_t dht22_read(int gpio, int16_t *temperature_dc, uint16_t *humidity_dpct)
{
    uint8_t b[5] = {0};
    gpio_set_direction(gpio, GPIO_MODE_INPUT_OUTPUT_OD);
    gpio_set_pull_mode(gpio, GPIO_PULLUP_ONLY);
    gpio_set_level(gpio, 0);
    esp_rom_delay_us(1200);
    esp_err_t err = ESP_OK;
    portENTER_CRITICAL(&dht_mux);
    gpio_set_level(gpio, 1); /* release: the pull-up takes it high */
    if (wait_while(gpio, 1, 60) < 0 || wait_while(gpio, 0, 100) < 0 ||
        wait_while(gpio, 1, 100) < 0) {
        err = ESP_ERR_TIMEOUT;
    } else {
        for (int i = 0; i < 40 && err == ESP_OK; i++) {
            int high;
            if (wait_while(gpio, 0, 70) < 0 || (high = wait_while(gpio, 1, 100)) < 0)
                err = ESP_ERR_TIMEOUT;
            else if (high > 45) /* 26-28 us is a 0, 70 us a 1 */
                b[i / 8] |= (uint8_t)(0x80 >> (i % 8));
        }
    }
    portEXIT_CRITICAL(&dht_mux);
    if (err != ESP_OK)
        return err;
    if ((uint8_t)(b[0] + b[1] + b[2] + b[3]) != b[4])
        return ESP_ERR_INVALID_CRC;
    *humidity_dpct = (uint16_t)(b[0] << 8 | b[1]);
    int16_t t = (int16_t)((b[2] & 0x7f) << 8 | b[3]);
    *temperature_dc = (b[2] & 0x80) ? (int16_t)-t : t;
    return ESP_OK;
}
