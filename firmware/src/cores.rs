//! The second core (ESP32-S3, ESP32-P4) as a worker of the engine: esp-hal's `CpuControl`
//! starts it in `JobSlot::serve`; the protocol itself lives in `esp_llm_board::cores`, where it
//! is tested with two host threads.

use esp_hal::peripherals::CPU_CTRL;
use esp_hal::system::{CpuControl, Stack};
use esp_llm_board::cores::{JobSlot, StartError, TwoCores};

/// The second core's stack: the matmul jobs need little, 16 KB leaves room for panics.
static mut APP_CORE_STACK: Stack<16384> = Stack::new();
/// Lives in internal SRAM (a static): atomics in PSRAM do not work on the S3.
static SLOT: JobSlot = JobSlot::new();

/// Starts core 1 and returns the two-core workers, or why not.
pub fn start(cpu_ctrl: CPU_CTRL<'static>) -> Result<TwoCores<'static>, StartError> {
    let mut control = CpuControl::new(cpu_ctrl);
    TwoCores::start(
        &SLOT,
        |slot| {
            // SAFETY: `start` runs once (TwoCores::start refuses a second claim of SLOT before
            // calling this), so this is the only reference to the stack ever made.
            let stack = unsafe { &mut *core::ptr::addr_of_mut!(APP_CORE_STACK) };
            if let Ok(guard) = control.start_app_core(stack, move || slot.serve()) {
                // Dropping the guard would park core 1; it serves until reset.
                core::mem::forget(guard);
            }
        },
        50_000_000,
    )
}
