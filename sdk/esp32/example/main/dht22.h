/* dht22.h — reading a DHT22 (AM2302) temperature and humidity sensor by bit-banging its
 * one-wire protocol (AM2302 datasheet, "Communication process"). */
#ifndef CANARY_EXAMPLE_DHT22_H
#define CANARY_EXAMPLE_DHT22_H

#include <stdint.h>

#include "esp_err.h"

/* Reads the sensor on gpio: temperature in tenths of a degree Celsius, relative humidity in
 * tenths of a percent, exactly as the sensor reports them (for cdev_reading_add_fixed with 1
 * decimal). ESP_ERR_TIMEOUT when the sensor does not answer, ESP_ERR_INVALID_CRC on a bad
 * checksum. The DHT22 needs 2 s between reads. */
esp_err_t dht22_read(int gpio, int16_t *temperature_dc, uint16_t *humidity_dpct);

#endif
