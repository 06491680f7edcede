/* mq2.c — MQ-2 through ADC1's oneshot driver; see mq2.h. */
#include "mq2.h"

#include <math.h>

#include "esp_adc/adc_oneshot.h"
#include "esp_idf_version.h"
#include "sdkconfig.h"

static adc_oneshot_unit_handle_t adc;
static adc_channel_t channel;

esp_err_t mq2_init(int adc1_channel)
{
    adc_oneshot_unit_init_cfg_t unit = {.unit_id = ADC_UNIT_1};
    esp_err_t err = adc_oneshot_new_unit(&unit, &adc);
    if (err != ESP_OK)
        return err;
    channel = (adc_channel_t)adc1_channel;
    adc_oneshot_chan_cfg_t cfg = {
        .bitwidth = ADC_BITWIDTH_12,
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 2, 0)
        .atten = ADC_ATTEN_DB_12, /* up to about 3.1 V */
#else
        .atten = ADC_ATTEN_DB_11,
#endif
    };
    return adc_oneshot_config_channel(adc, channel, &cfg);
}

esp_err_t mq2_read(int *sensor_mv, double *ppm)
{
    int raw = 0;
    esp_err_t err = adc_oneshot_read(adc, channel, &raw);
    if (err != ESP_OK)
        return err;
    /* Uncalibrated conversion (full scale ~3100 mV at 12 dB); adc_cali_* would refine it. */
    double adc_mv = raw * 3100.0 / 4095.0;
    double v = adc_mv * CONFIG_CANARY_MQ2_DIVIDER_X1000 / 1000.0; /* at the module's pin */
    *sensor_mv = (int)lround(v);
    if (v < 1) { /* no output: a missing sensor, not clean air */
        *ppm = NAN;
        return ESP_OK;
    }
    double rs = CONFIG_CANARY_MQ2_RL_OHM * (5000.0 - v) / v; /* the module runs at 5 V */
    *ppm = 574.25 * pow(rs / CONFIG_CANARY_MQ2_R0_OHM, -2.222);
    return ESP_OK;
}
