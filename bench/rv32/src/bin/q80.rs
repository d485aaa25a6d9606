//! stories260K int8 Q8_0 (llama2.c v2 file, group 4), greedy, 64 steps from "Once upon a time".
#![no_std]
#![no_main]

#[no_mangle]
extern "C" fn rv32bench_main() -> ! {
    esp_llm_rv32bench::run("stories260K_q80.bin", esp_llm_rv32bench::Q80_MODEL)
}
