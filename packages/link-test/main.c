/* Link check for the MCU static libraries: a small C program against include/esp_llm.h that
 * calls every function of the API. packages/link-test.sh links it for each RISC-V chip with
 * Debian's riscv64-unknown-elf-gcc and picolibc; it is never run (the firmware's tests run the
 * engine on emulated chips). The model would be a flash partition mapped by the program. */
#include "esp_llm.h"

#include <stdio.h>

extern const uint8_t model_partition[];
extern const size_t model_partition_len;

static bool put_piece(void *user_data, const char *piece, size_t len) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    return true;
}

int main(void) {
    esp_llm_error e;
    size_t len = 0;
    if (esp_llm_bundle_length(model_partition, 128, model_partition_len, &len, &e) != ESP_LLM_OK) {
        printf("%s: %s\n", esp_llm_status_name(e.status), e.message);
        return 1;
    }
    esp_llm_options o = esp_llm_options_default();
    o.seq_len = 128;
    esp_llm_info info;
    if (esp_llm_memory(model_partition, len, &o, &info, &e) != ESP_LLM_OK) return 1;
    printf("esp-llm %s: %u bytes of heap\n", esp_llm_version(), (unsigned)info.heap_total);
    esp_llm_model *m = NULL;
    if (esp_llm_open(model_partition, len, &o, &m, &e) != ESP_LLM_OK) return 1;
    esp_llm_model_info(m, &info, &e);
    esp_llm_sampler_options s = esp_llm_sampler_default();
    s.temperature = 0.8f;
    s.seed = 42;
    esp_llm_set_sampler(m, &s, &e);
    esp_llm_result r;
    esp_llm_generate(m, "Once upon a time", 0, put_piece, NULL, &r, &e);
    esp_llm_chat_reset(m, 0, &e);
    esp_llm_chat_turn(m, "You tell stories", "A story about a frog", put_piece, NULL, &r, &e);
    esp_llm_close(m);
    return r.stop == ESP_LLM_STOP_EOS ? 0 : 2;
}

/* Stands in for the mapped partition (an all-erased one: linking only needs the symbols). */
const uint8_t model_partition[4096] = {0xFF};
const size_t model_partition_len = sizeof model_partition;
