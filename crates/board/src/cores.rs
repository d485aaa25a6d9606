//! Two cores running one job: the engine's [`Workers`] on the ESP32-S3 / ESP32-P4.
//!
//! The second core runs [`JobSlot::serve`], a loop that waits for a job and runs it as worker 1.
//! The first core posts a job by storing a pointer to it and bumping a sequence number
//! (release), runs its own share as worker 0, and waits until the second core has stored the
//! same sequence number into `done` (release; we acquire it). That pair of release/acquire
//! stores is the whole protocol: the job's writes on core 1 are visible to core 0 after the
//! wait, and the job pointer written before the bump is visible to core 1 after it sees the
//! bump. No interrupts, no locks; the cost per job is two cache-line handoffs, a few hundred
//! nanoseconds on the chip, against the ~36 matmuls per token of stories260K.
//!
//! How the second core is started is the caller's business ([`TwoCores::start`] takes a
//! closure): the firmware calls esp-hal's `CpuControl::start_app_core`, the tests spawn a std
//! thread. The protocol code is the same.

use core::cell::UnsafeCell;
use core::fmt;
use esp_llm_engine::parallel::Workers;
use portable_atomic::{AtomicBool, AtomicU32, Ordering};

/// A job as the second core sees it. The `'static` is a lie told to the type system: the
/// pointer is only dereferenced between the post and the matching `done`, while the caller's
/// borrow is alive (see [`TwoCores::run`]).
type JobPtr = *const (dyn Fn(usize) + Sync + 'static);

/// The state shared by the two cores. Put one in a `static`.
pub struct JobSlot {
    /// Bumped by core 0 to post a job (or a stop request).
    seq: AtomicU32,
    /// The last `seq` the worker has finished.
    done: AtomicU32,
    /// Set by the worker when it enters `serve`.
    started: AtomicBool,
    /// Set once a `TwoCores` has claimed this slot.
    claimed: AtomicBool,
    /// Set while a `run` is in flight (guards against concurrent callers on the host).
    busy: AtomicBool,
    /// Set with a final `seq` bump to make `serve` return.
    stop: AtomicBool,
    job: UnsafeCell<Option<JobPtr>>,
}

// SAFETY: `job` is written only by the `busy` holder before a release-store of `seq`, and read
// only by the worker after an acquire-load of that `seq`, and not written again until the
// worker's release-store of `done` has been acquired. Everything else is atomics.
unsafe impl Sync for JobSlot {}

impl Default for JobSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl JobSlot {
    /// A slot with no worker.
    pub const fn new() -> Self {
        JobSlot {
            seq: AtomicU32::new(0),
            done: AtomicU32::new(0),
            started: AtomicBool::new(false),
            claimed: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            job: UnsafeCell::new(None),
        }
    }

    /// The worker's loop: run this on the second core. It runs every posted job as worker 1
    /// and returns only after [`TwoCores::stop`].
    pub fn serve(&self) {
        let mut seen = self.seq.load(Ordering::Acquire);
        self.started.store(true, Ordering::Release);
        loop {
            let s = self.seq.load(Ordering::Acquire);
            if s == seen {
                core::hint::spin_loop();
                continue;
            }
            seen = s;
            if self.stop.load(Ordering::Acquire) {
                self.done.store(s, Ordering::Release);
                return;
            }
            // SAFETY: see `unsafe impl Sync`: the poster wrote `job` before its release-store
            // of `seq`, which our acquire-load saw, and keeps the job alive until `done == s`.
            let job = unsafe { *self.job.get() };
            if let Some(job) = job {
                // SAFETY: as above, the pointee outlives this call.
                unsafe { (*job)(1) };
            }
            self.done.store(s, Ordering::Release);
        }
    }
}

/// Why the second core did not come up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The slot already belongs to a `TwoCores`.
    AlreadyClaimed,
    /// The worker did not enter `serve` within the wait budget.
    NotStarted,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::AlreadyClaimed => write!(f, "the job slot is already in use"),
            StartError::NotStarted => write!(f, "the second core did not start"),
        }
    }
}

/// [`Workers`] over two cores (count 2): the caller is worker 0, the second core worker 1.
pub struct TwoCores<'s> {
    slot: &'s JobSlot,
}

impl<'s> TwoCores<'s> {
    /// Claims `slot`, calls `spawn(slot)`, which must arrange for `slot.serve()` to run on
    /// another core or thread, and waits up to `max_spins` polls for it to start.
    pub fn start(
        slot: &'s JobSlot,
        spawn: impl FnOnce(&'s JobSlot),
        max_spins: u64,
    ) -> Result<Self, StartError> {
        if slot.claimed.swap(true, Ordering::AcqRel) {
            return Err(StartError::AlreadyClaimed);
        }
        spawn(slot);
        let mut spins = 0u64;
        while !slot.started.load(Ordering::Acquire) {
            if spins >= max_spins {
                return Err(StartError::NotStarted);
            }
            spins += 1;
            core::hint::spin_loop();
        }
        Ok(TwoCores { slot })
    }

    /// Makes the worker's `serve` return, and waits for that.
    pub fn stop(self) {
        while self.slot.busy.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        self.slot.stop.store(true, Ordering::Release);
        let s = self.slot.seq.load(Ordering::Relaxed).wrapping_add(1);
        self.slot.seq.store(s, Ordering::Release);
        while self.slot.done.load(Ordering::Acquire) != s {
            core::hint::spin_loop();
        }
    }
}

/// Waits for the worker to finish job `seq` even if worker 0's share panics, so that the job
/// the worker may still be running is never freed under it.
struct WaitDone<'a> {
    slot: &'a JobSlot,
    seq: u32,
}

impl Drop for WaitDone<'_> {
    fn drop(&mut self) {
        while self.slot.done.load(Ordering::Acquire) != self.seq {
            core::hint::spin_loop();
        }
        // SAFETY: the worker has finished with `job` (done == seq acquired), and we hold `busy`.
        unsafe { *self.slot.job.get() = None };
        self.slot.busy.store(false, Ordering::Release);
    }
}

impl Workers for TwoCores<'_> {
    fn count(&self) -> usize {
        2
    }

    /// Splits jobs from 4K multiply-adds per core. A round trip through the job slot is a few
    /// hundred cycles of atomics, while 4K int8 multiply-adds take ~12K cycles with the portable
    /// kernels (docs/plan.md), so the second core also takes stories260K's fused qkv, w1/w3 and
    /// w2 jobs, not only the classifier (the engine's 16K default would leave it idle for those).
    /// An estimate from cycle counts, not a board measurement: tune it on an S3/P4.
    fn min_work_per_worker(&self) -> usize {
        4 * 1024
    }

    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.slot.busy.swap(true, Ordering::Acquire) {
            // Another thread is using the second core (only possible on a host): both shares
            // run here, which still calls job(i) once for each i.
            job(0);
            job(1);
            return;
        }
        let ptr: *const (dyn Fn(usize) + Sync + '_) = job;
        // SAFETY: only the lifetime bound changes (same fat-pointer layout). The pointer is
        // used by the worker only until it stores `done == seq`, and `WaitDone` below does not
        // let this function return (or unwind) before it has seen that.
        let ptr: JobPtr = unsafe { core::mem::transmute(ptr) };
        // SAFETY: we hold `busy`, and the worker is idle (it finished the previous seq).
        unsafe { *self.slot.job.get() = Some(ptr) };
        let seq = self.slot.seq.load(Ordering::Relaxed).wrapping_add(1);
        let wait = WaitDone { slot: self.slot, seq };
        self.slot.seq.store(seq, Ordering::Release);
        job(0);
        drop(wait);
    }
}

/// Lets a borrowed pair serve a transformer while the owner keeps it (to `stop` it later).
impl Workers for &TwoCores<'_> {
    fn count(&self) -> usize {
        (**self).count()
    }

    fn min_work_per_worker(&self) -> usize {
        (**self).min_work_per_worker()
    }

    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        (**self).run(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esp_llm_engine::parallel::for_rows;
    use std::sync::atomic::AtomicUsize;
    use std::thread;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    const SPINS: u64 = 1 << 40; // effectively "until it starts": a thread always does

    fn with_two<R>(f: impl FnOnce(&TwoCores<'_>) -> R) -> R {
        let slot = JobSlot::new();
        thread::scope(|s| {
            let w = TwoCores::start(
                &slot,
                |sl| {
                    s.spawn(move || sl.serve());
                },
                SPINS,
            )
            .unwrap();
            let r = f(&w);
            w.stop();
            r
        })
    }

    #[test]
    fn each_index_runs_once_per_job() {
        with_two(|w| {
            assert_eq!(w.count(), 2);
            let hits = [AtomicUsize::new(0), AtomicUsize::new(0)];
            for _ in 0..10_000 {
                w.run(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert_eq!(hits.map(|h| h.into_inner()), [10_000, 10_000]);
        });
    }

    #[test]
    fn the_two_shares_run_concurrently_on_different_threads() {
        with_two(|w| {
            let arrived = AtomicUsize::new(0);
            let ids = std::sync::Mutex::new(Vec::new());
            w.run(&|_| {
                ids.lock().unwrap().push(thread::current().id());
                arrived.fetch_add(1, Ordering::SeqCst);
                // Each share waits for the other: this only finishes if both run at once.
                let t = Instant::now();
                while arrived.load(Ordering::SeqCst) < 2 {
                    assert!(t.elapsed() < Duration::from_secs(10), "shares did not overlap");
                    thread::yield_now();
                }
            });
            let ids = ids.into_inner().unwrap();
            assert_eq!(ids.len(), 2);
            assert_ne!(ids[0], ids[1]);
        });
    }

    #[test]
    fn results_written_by_worker_1_are_visible_after_run() {
        with_two(|w| {
            for len in [1usize, 2, 3, 17, 64, 511] {
                for round in 0..50u32 {
                    let mut out = std::vec![0f32; len];
                    for_rows(w, &mut out, 1, &|start, chunk| {
                        for (k, o) in chunk.iter_mut().enumerate() {
                            *o = ((start + k) as u32 * 3 + round) as f32;
                        }
                    });
                    for (k, o) in out.iter().enumerate() {
                        assert_eq!(*o, (k as u32 * 3 + round) as f32);
                    }
                }
            }
        });
    }

    #[test]
    fn a_panicking_share_still_waits_for_the_other() {
        with_two(|w| {
            let finished = AtomicBool::new(false);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                w.run(&|i| {
                    if i == 0 {
                        panic!("worker 0 fails");
                    }
                    thread::sleep(Duration::from_millis(50));
                    finished.store(true, Ordering::SeqCst);
                })
            }));
            assert!(r.is_err());
            assert!(finished.load(Ordering::SeqCst), "run unwound before worker 1 finished");
            // The pair is still usable.
            let n = AtomicUsize::new(0);
            w.run(&|_| {
                n.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(n.into_inner(), 2);
        });
    }

    #[test]
    fn concurrent_callers_fall_back_to_running_both_shares() {
        with_two(|w| {
            let total = AtomicUsize::new(0);
            thread::scope(|s| {
                for _ in 0..3 {
                    s.spawn(|| {
                        for _ in 0..2000 {
                            w.run(&|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        }
                    });
                }
            });
            assert_eq!(total.into_inner(), 3 * 2000 * 2);
        });
    }

    #[test]
    fn start_reports_a_core_that_never_comes_up_and_double_claims() {
        let slot = JobSlot::new();
        assert_eq!(TwoCores::start(&slot, |_| {}, 1000).err(), Some(StartError::NotStarted));
        assert_eq!(TwoCores::start(&slot, |_| {}, 1000).err(), Some(StartError::AlreadyClaimed));
    }
}
