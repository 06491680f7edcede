/* mq2.h — an MQ-2 gas sensor module's analog output through ADC1 (ESP-IDF's oneshot
 * driver), as millivolts and an approximate LPG-equivalent ppm.
 *
 * The ppm figure is a power-law fit of the datasheet's LPG curve, ppm = 574.25 *
 * (Rs/R0)^-2.222, with the R0, RL and divider from menuconfig. It is only as
 * good as the R0 calibration (clean air, after burn-in) and drifts with temperature and
 * humidity; canaryd's detectors work on changes, so a stable offset matters less than a
 * stable sensor. */
#ifndef CANARY_EXAMPLE_MQ2_H
#define CANARY_EXAMPLE_MQ2_H

#include "esp_err.h"

esp_err_t mq2_init(int adc1_channel);

/* The module's output in millivolts (before the divider) and the ppm estimate (NaN when
 * the output is 0 V: no sensor, which the SDK then refuses to send as a value). */
esp_err_t mq2_read(int *sensor_mv, double *ppm);

#endif
