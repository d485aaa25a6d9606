/* esp_llm_run: `esp-llm run` in C over the esp-llm C API (include/esp_llm.h).
 *
 *   esp_llm_run MODEL [-z TOKENIZER] [-t TEMP] [-p TOPP] [-s SEED] [-n STEPS] [-i PROMPT]
 *               [-m generate|chat] [-y SYSTEM] [--numerics auto|float|fixed]
 *
 * Same flags, defaults and output as `esp-llm run` (stdout is byte for byte the same; the
 * test suite compares them), except that the seed must be given as a nonzero number and a
 * llama2.c checkpoint needs -z (a bundle carries its own tokenizer).
 * Build: cc -Iinclude esp_llm_run.c libesp_llm_capi.a -lpthread -ldl -lm -o esp_llm_run */
#include "esp_llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole file into memory; exits with a message on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "error: cannot open %s\n", path); exit(1); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "error: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The piece callback: print and go on. */
static bool print_piece(void *user_data, const char *piece, size_t len) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* One line of stdin without its newline, after showing `guide`; NULL at the end of input. */
static char *read_line(const char *guide, char *buf, size_t size) {
    fputs(guide, stdout);
    fflush(stdout);
    if (!fgets(buf, (int)size, stdin)) return NULL;
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
    return buf;
}

static int fail(const char *what, const esp_llm_error *e) {
    fprintf(stderr, "error: %s: %s (%s)\n", what, e->message, esp_llm_status_name(e->status));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [-z TOKENIZER] [-t T] [-p P] [-s SEED] [-n STEPS] "
                        "[-i PROMPT] [-m generate|chat] [-y SYSTEM] [--numerics auto|float|fixed]\n",
                argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *tokenizer_path = NULL, *prompt = NULL, *mode = "generate";
    const char *system = NULL;
    esp_llm_sampler_options sampler = esp_llm_sampler_default();
    esp_llm_options options = esp_llm_options_default();
    long steps = 256;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *value = argv[i + 1];
        if (!strcmp(flag, "-z")) tokenizer_path = value;
        else if (!strcmp(flag, "-t")) sampler.temperature = strtof(value, NULL);
        else if (!strcmp(flag, "-p")) sampler.topp = strtof(value, NULL);
        else if (!strcmp(flag, "-s")) sampler.seed = strtoull(value, NULL, 10);
        else if (!strcmp(flag, "-n")) steps = strtol(value, NULL, 10);
        else if (!strcmp(flag, "-i")) prompt = value;
        else if (!strcmp(flag, "-m")) mode = value;
        else if (!strcmp(flag, "-y")) system = value;
        else if (!strcmp(flag, "--numerics")) {
            options.numerics = !strcmp(value, "fixed")   ? ESP_LLM_NUMERICS_FIXED
                               : !strcmp(value, "float") ? ESP_LLM_NUMERICS_FLOAT
                                                         : ESP_LLM_NUMERICS_AUTO;
        } else {
            fprintf(stderr, "unknown flag %s\n", flag);
            return 2;
        }
    }
    if (steps < 0) steps = 0;

    size_t model_len = 0, tokenizer_len = 0;
    uint8_t *model_bytes = read_file(model_path, &model_len);
    uint8_t *tokenizer_bytes = tokenizer_path ? read_file(tokenizer_path, &tokenizer_len) : NULL;
    options.tokenizer = tokenizer_bytes;
    options.tokenizer_len = tokenizer_len;

    esp_llm_error e;
    esp_llm_model *model = NULL;
    if (esp_llm_open(model_bytes, model_len, &options, &model, &e) != ESP_LLM_OK)
        return fail(model_path, &e);
    if (esp_llm_set_sampler(model, &sampler, &e) != ESP_LLM_OK) return fail("sampler", &e);

    int status = 0;
    if (!strcmp(mode, "chat")) {
        /* run.c's chat loop: the system prompt once, then user turns until the context is used
         * or stdin ends. */
        esp_llm_info info;
        esp_llm_model_info(model, &info, &e);
        uint32_t limit = (steps == 0 || (unsigned long)steps > info.seq_len) ? info.seq_len : (uint32_t)steps;
        esp_llm_chat_reset(model, limit, &e);
        static char system_buf[4096], user_buf[4096];
        esp_llm_result r = {0};
        while (r.pos < limit) {
            bool first = r.pos == 0;
            if (first && !system) {
                system = read_line("Enter system prompt (optional): ", system_buf, sizeof system_buf);
                if (!system) break;
            }
            const char *user = (first && prompt) ? prompt : read_line("User: ", user_buf, sizeof user_buf);
            if (!user) break;
            fputs("Assistant: ", stdout);
            if (esp_llm_chat_turn(model, first ? system : NULL, user, print_piece, NULL, &r, &e) != ESP_LLM_OK) {
                status = fail("chat", &e);
                break;
            }
        }
        fputs("\n", stdout);
    } else {
        esp_llm_result r;
        if (esp_llm_generate(model, prompt, (uint32_t)steps, print_piece, NULL, &r, &e) != ESP_LLM_OK)
            status = fail("generate", &e);
        else
            fputs("\n", stdout);
    }
    esp_llm_close(model);
    free(tokenizer_bytes);
    free(model_bytes);
    return status;
}
