//! stories260K fp32 (llama2.c v0 file), greedy, 64 steps from "Once upon a time".
#![no_std]
#![no_main]

#[no_mangle]
extern "C" fn rv32bench_main() -> ! {
    esp_llm_rv32bench::run("stories260K.bin", esp_llm_rv32bench::FP32_MODEL)
}
