//! A persistent host thread pool implementing [`Workers`] (the `std` feature).
//!
//! Jobs are handed over through an epoch counter: the caller stores the job, bumps the epoch
//! and runs worker 0 itself; the other workers spin on the epoch for a while (a job usually
//! follows within microseconds during a forward pass), then yield, then park until woken. The
//! caller spins on a countdown of unfinished workers. A handover costs about a microsecond when
//! the workers are spinning, instead of the tens of microseconds of a futex wake-up.

use super::Workers;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins (then yields) before it parks.
const SPIN_FOR: Duration = Duration::from_micros(300);
/// Busy-wait iterations before the waiting side starts yielding its core.
const PURE_SPINS: u32 = 2000;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job; workers run the job when it changes.
    epoch: AtomicUsize,
    /// The current job (valid while `remaining > 0` for this epoch).
    job: UnsafeCell<Option<Job>>,
    /// Workers (other than the caller) still running the current job.
    remaining: AtomicUsize,
    /// Set when the pool is dropped.
    shutdown: AtomicBool,
    /// Set when a worker's job panicked; the caller re-raises it.
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the thread holding `Pool::lock` while no worker reads it
// (every worker has finished the previous epoch: `remaining == 0`), and published with a
// Release store of `epoch` that workers Acquire before reading it.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced during its epoch.
unsafe impl Send for Shared {}

/// `n` workers: the calling thread plus `n - 1` pool threads.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    lock: Mutex<()>,
}

impl Pool {
    /// A pool of `n` workers (`n - 1` threads are started; 0 is taken as 1).
    pub fn new(n: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            remaining: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let mut pool = Pool { shared, threads: Vec::new(), lock: Mutex::new(()) };
        for i in 1..n.max(1) {
            let shared = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(format!("esp-llm-worker-{i}"))
                .spawn(move || worker(&shared, i))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// The number of CPUs this process may use (1 if unknown).
    pub fn available_parallelism() -> usize {
        thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            if spins < PURE_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else if start.elapsed() < SPIN_FOR {
                thread::yield_now();
            } else {
                // A wake-up between the check above and here leaves the park token set, so
                // this returns at once; spurious returns just loop.
                thread::park();
            }
        }
        // SAFETY: the caller published the job before bumping the epoch (Release/Acquire) and
        // keeps it alive until `remaining` drops to 0, which happens only after this call.
        let job = unsafe { *shared.job.get() };
        if let Some(job) = job {
            // SAFETY: see above; the pointee outlives this call.
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| f(index))).is_err() {
                shared.panicked.store(true, Ordering::Release);
            }
        }
        shared.remaining.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Workers for Pool {
    fn count(&self) -> usize {
        self.threads.len() + 1
    }

    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        let Ok(_guard) = self.lock.try_lock() else {
            // Called from inside a job, or from two threads at once: run it here, in order.
            for i in 0..self.count() {
                job(i);
            }
            return;
        };
        if self.threads.is_empty() {
            return job(0);
        }
        let s = &*self.shared;
        // SAFETY: erasing the lifetime is sound because this function does not return before
        // every worker has finished with the pointer (`remaining == 0` below), even on panic.
        let ptr: Job = unsafe {
            core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(job)
        };
        // SAFETY: no worker reads `job` now: all finished the previous epoch (see Sync above).
        unsafe { *s.job.get() = Some(ptr) };
        s.remaining.store(self.threads.len(), Ordering::Release);
        s.epoch.fetch_add(1, Ordering::AcqRel);
        for t in &self.threads {
            t.thread().unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while s.remaining.load(Ordering::Acquire) != 0 {
            if spins < PURE_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("a worker thread panicked while running a job");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_index_runs_once_per_job() {
        for n in 1..5 {
            let pool = Pool::new(n).unwrap();
            assert_eq!(pool.count(), n);
            for round in 0..200u64 {
                let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                pool.run(&|i| {
                    hits[i].fetch_add(round + 1, Ordering::Relaxed);
                });
                for h in &hits {
                    assert_eq!(h.load(Ordering::Relaxed), round + 1);
                }
            }
        }
    }

    #[test]
    fn work_after_parking_still_runs() {
        let pool = Pool::new(3).unwrap();
        let sum = AtomicU64::new(0);
        pool.run(&|i| {
            sum.fetch_add(i as u64, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(5));
        pool.run(&|i| {
            sum.fetch_add(10 * i as u64, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3 + 30);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let sum = AtomicU64::new(0);
        pool.run(&|i| {
            sum.fetch_add(i as u64 + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }
}
