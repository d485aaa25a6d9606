// Story: a llama2.c story from the `model` flash partition, streamed to Serial.
//
// Board: ESP32-C3 / ESP32-C6 (4 MB flash) or ESP32-P4 (Arduino-ESP32 core 3.x).
// Flash layout: this folder's partitions.csv (the esp-llm firmware's 4 MB table: a 3 MB
// `model` data partition at 0x100000), picked up by the Arduino IDE from the sketch folder.
// Model: pack and write it once from a PC, then upload this sketch:
//     esp-llm pack stories260K.bin --quant q8 -o stories260K_q8.ellb
//     esp-llm flash --port /dev/ttyACM0 --chip esp32c3 --model stories260K_q8.ellb
// (the model is read in place through the flash cache; only the run state takes RAM: the
// context is shortened until it fits the free heap.)
#include <esp_llm.h>
#include <esp_partition.h>

static esp_llm_model *model = nullptr;
static esp_partition_mmap_handle_t mapping;

// Each token's text, as it comes; returning false would stop the story.
static bool to_serial(void *, const char *piece, size_t len) {
  Serial.write(reinterpret_cast<const uint8_t *>(piece), len);
  return true;
}

static void fail(const char *what, const esp_llm_error &e) {
  Serial.printf("%s: %s (%s)\n", what, e.message, esp_llm_status_name(e.status));
}

void setup() {
  Serial.begin(115200);
  delay(1000);
  // `esp-llm flash` writes the bundle to the data partition labelled "model".
  const esp_partition_t *part =
      esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, "model");
  if (!part) {
    Serial.println("no 'model' partition: put partitions.csv beside the sketch");
    return;
  }
  esp_llm_error e;
  uint8_t head[128];
  size_t len = 0;
  if (esp_partition_read(part, 0, head, sizeof head) != ESP_OK ||
      esp_llm_bundle_length(head, sizeof head, part->size, &len, &e) != ESP_LLM_OK) {
    fail("model partition", e);
    return;
  }
  const void *bytes = nullptr;
  if (esp_partition_mmap(part, 0, len, ESP_PARTITION_MMAP_DATA, &bytes, &mapping) != ESP_OK) {
    Serial.println("cannot map the model partition");
    return;
  }
  // The longest context whose run state fits the free heap (with 32 KB to spare).
  esp_llm_options options = esp_llm_options_default();
  esp_llm_info info;
  if (esp_llm_memory(static_cast<const uint8_t *>(bytes), len, &options, &info, &e) != ESP_LLM_OK) {
    fail("model", e);
    return;
  }
  size_t budget = ESP.getFreeHeap() > 32768 ? ESP.getFreeHeap() - 32768 : 0;
  for (options.seq_len = info.model_seq_len; options.seq_len > 16; options.seq_len -= options.seq_len / 8) {
    esp_llm_memory(static_cast<const uint8_t *>(bytes), len, &options, &info, &e);
    if (info.heap_total <= budget) break;
  }
  if (esp_llm_open(static_cast<const uint8_t *>(bytes), len, &options, &model, &e) != ESP_LLM_OK) {
    fail("open", e);
    return;
  }
  Serial.printf("model: dim %u, %u layers, vocab %u, context %u of %u, %s numerics, %u bytes of heap\n",
                (unsigned)info.dim, (unsigned)info.n_layers, (unsigned)info.vocab_size,
                (unsigned)info.seq_len, (unsigned)info.model_seq_len,
                info.numerics == ESP_LLM_NUMERICS_FIXED ? "fixed-point" : "float",
                (unsigned)info.heap_total);
}

void loop() {
  if (!model) {
    delay(1000);
    return;
  }
  esp_llm_sampler_options sampler = esp_llm_sampler_default();
  sampler.temperature = 0.8f;
  sampler.seed = esp_random() | 1;  // nonzero: a new story each time
  esp_llm_error e;
  esp_llm_set_sampler(model, &sampler, &e);
  esp_llm_result r;
  uint32_t start = millis();
  if (esp_llm_generate(model, "Once upon a time", 0, to_serial, nullptr, &r, &e) != ESP_LLM_OK) {
    fail("generate", e);
  }
  uint32_t ms = millis() - start;
  Serial.printf("\n[%u tokens in %u ms]\n\n", (unsigned)r.positions, (unsigned)ms);
  delay(5000);
}
