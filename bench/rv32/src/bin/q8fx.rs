//! stories260K as an int8 device bundle (groups of 64, packed by build.rs) with the engine's
//! fixed-point numerics (`Numerics::Fixed`, the path for cores without an FPU), greedy, 64
//! steps from "Once upon a time".
#![no_std]
#![no_main]

#[no_mangle]
extern "C" fn rv32bench_main() -> ! {
    esp_llm_rv32bench::run_with(
        "stories260K_q8g64.ellb",
        esp_llm_rv32bench::Q8G64_MODEL,
        esp_llm_engine::Numerics::Fixed,
    )
}
