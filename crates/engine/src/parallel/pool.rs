//! A persistent host thread pool implementing [`Workers`] (the `std` feature).
//!
//! A job of `n` parts (one per worker index) is published by storing it and bumping a state
//! word `(epoch << 32) | next_part`. Every thread, the caller included, claims parts with a
//! compare-and-swap and runs them; the caller then waits only for parts other threads have
//! claimed and not finished. Idle workers spin on the state word (a job usually follows within
//! microseconds during a forward pass), then park until woken.
//!
//! Claiming instead of assigning parts matters on a shared machine: when a worker thread is
//! descheduled (another process holds its core), the caller simply runs that worker's part
//! itself instead of waiting milliseconds for the scheduler to bring the worker back.

use super::Workers;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN_FOR: Duration = Duration::from_micros(200);
/// Busy-wait iterations of the caller before it starts yielding its core.
const CALLER_SPINS: u32 = 20_000;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// `(epoch << 32) | next unclaimed part`; parts run out at `parts`.
    state: AtomicU64,
    /// Parts of the current job (the pool's worker count).
    parts: u64,
    /// The current job, valid while any of its parts is claimed and unfinished.
    job: UnsafeCell<Option<Job>>,
    /// Parts of the current job finished.
    done: AtomicUsize,
    /// Set when the pool is dropped.
    shutdown: AtomicBool,
    /// Set when a part panicked; the caller re-raises it.
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the thread holding `Pool::lock`, before the Release store
// of `state` that opens the job, and while no part of the previous job is claimed and
// unfinished (`done == parts`); it is read only after a successful claim (AcqRel CAS on
// `state`), before that part is counted in `done`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced while its part is running.
unsafe impl Send for Shared {}

impl Shared {
    /// Claims and runs parts of the current job until none is left; returns how many ran.
    fn run_parts(&self) -> usize {
        let mut ran = 0;
        let mut s = self.state.load(Ordering::Acquire);
        while s & 0xffff_ffff < self.parts {
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let part = (s & 0xffff_ffff) as usize;
                    // SAFETY: the claim above happened after the job was published and
                    // before `done` counts this part, so the pointee is alive (see Sync).
                    if let Some(job) = unsafe { *self.job.get() } {
                        // SAFETY: as above.
                        let f = unsafe { &*job };
                        if catch_unwind(AssertUnwindSafe(|| f(part))).is_err() {
                            self.panicked.store(true, Ordering::Release);
                        }
                    }
                    self.done.fetch_add(1, Ordering::AcqRel);
                    ran += 1;
                    s = self.state.load(Ordering::Acquire);
                }
                Err(now) => s = now,
            }
        }
        ran
    }

    fn has_work(&self) -> bool {
        self.state.load(Ordering::Acquire) & 0xffff_ffff < self.parts
    }
}

/// `n` workers: the calling thread plus `n - 1` pool threads.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    lock: Mutex<()>,
}

impl Pool {
    /// A pool of `n` workers (`n - 1` threads are started; 0 is taken as 1).
    pub fn new(n: usize) -> std::io::Result<Pool> {
        let n = n.clamp(1, 1 << 16);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(n as u64),
            parts: n as u64,
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(n),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let mut pool = Pool { shared, threads: Vec::new(), lock: Mutex::new(()) };
        for i in 1..n {
            let shared = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(format!("esp-llm-worker-{i}"))
                .spawn(move || worker(&shared))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// The number of CPUs this process may use (1 if unknown).
    pub fn available_parallelism() -> usize {
        thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

fn worker(shared: &Shared) {
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        while !shared.has_work() {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || start.elapsed() < SPIN_FOR {
                std::hint::spin_loop();
            } else {
                // A wake-up between the check above and here leaves the park token set, so
                // this returns at once; spurious returns just loop.
                thread::park();
            }
        }
        shared.run_parts();
    }
}

impl Workers for Pool {
    fn count(&self) -> usize {
        self.threads.len() + 1
    }

    /// On the host a 16K-multiply-add part takes ~3 us with SIMD kernels, no more than the
    /// cost of handing it over; 32K keeps stories260K's matmuls (all <= 32K) on one thread,
    /// which measured faster than splitting its classifier.
    fn min_work_per_worker(&self) -> usize {
        32 * 1024
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
        // every claimed part has finished (`done == parts` below), even when a part panics.
        let ptr: Job = unsafe {
            core::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(job)
        };
        // SAFETY: the previous job is over (`done == parts`), so no thread reads `job` now.
        unsafe { *s.job.get() = Some(ptr) };
        s.done.store(0, Ordering::Release);
        let epoch = (s.state.load(Ordering::Acquire) >> 32).wrapping_add(1) & 0xffff_ffff;
        s.state.store(epoch << 32, Ordering::Release);
        for t in &self.threads {
            t.thread().unpark();
        }
        s.run_parts();
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < s.parts as usize {
            if spins < CALLER_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        // SAFETY: every part is done; clear the pointer so it cannot dangle.
        unsafe { *s.job.get() = None };
        if s.panicked.swap(false, Ordering::AcqRel) {
            resume_unwind(Box::new("a part of a parallel job panicked"));
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
