//! Measures the round trip of the two-core job protocol on the host (two std threads): how
//! long `TwoCores::run` takes for an empty job, i.e. the fixed cost added to every split
//! matmul. On the chips the same code runs with core 1 in `JobSlot::serve`.
//!
//! ```sh
//! cargo run --release -p esp-llm-board --example job_latency
//! ```

use esp_llm_board::cores::{JobSlot, TwoCores};
use esp_llm_engine::parallel::Workers;
use std::time::Instant;

fn main() {
    let slot = JobSlot::new();
    std::thread::scope(|s| {
        let w = TwoCores::start(
            &slot,
            |sl| {
                s.spawn(move || sl.serve());
            },
            u64::MAX,
        )
        .expect("worker thread");
        let n = 200_000u32;
        for round in 0..3 {
            let t = Instant::now();
            for _ in 0..n {
                w.run(&|i| {
                    std::hint::black_box(i);
                });
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
            println!("round {round}: {n} empty jobs, {ns:.0} ns per job");
        }
        w.stop();
    });
}
