//! Splitting one job over several workers (host threads, or the ESP32-S3's second core).
//!
//! A matmul's output rows are cut into contiguous ranges, one per worker; each worker writes
//! only its own range, so no locking is needed, only a barrier at the end of the job.

#[cfg(any(test, feature = "std"))]
pub mod pool;

use core::marker::PhantomData;
use core::ops::Range;

/// Something that runs a job on `count()` workers at once. The caller's thread counts as one
/// of them (index 0). `run` returns when every worker has finished.
pub trait Workers: Sync {
    /// Number of workers, at least 1.
    fn count(&self) -> usize;
    /// Calls `job(i)` exactly once for each `i in 0..count()`, concurrently where it can (an
    /// implementation may run several indices on one thread, e.g. when a worker is busy), and
    /// waits for all.
    fn run(&self, job: &(dyn Fn(usize) + Sync));
    /// Multiply-adds per worker below which splitting a job does not pay for its sync (the
    /// forward pass then runs it on the caller alone). The default suits slow cores, where a
    /// matmul takes milliseconds; the host pool raises it.
    fn min_work_per_worker(&self) -> usize {
        16 * 1024
    }
}

/// One worker: the calling thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Serial;

impl Workers for Serial {
    fn count(&self) -> usize {
        1
    }
    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        job(0)
    }
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..len`.
pub fn split(len: usize, parts: usize, i: usize) -> core::ops::Range<usize> {
    let base = len / parts;
    let extra = len % parts;
    let start = i * base + i.min(extra);
    let end = start + base + usize::from(i < extra);
    start..end
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..len` whose boundaries are
/// multiples of `align` (except the end), so that SIMD row blocks stay whole.
pub fn split_aligned(len: usize, parts: usize, i: usize, align: usize) -> core::ops::Range<usize> {
    let align = align.max(1);
    let units = split(len.div_ceil(align), parts, i);
    (units.start * align).min(len)..(units.end * align).min(len)
}

/// Chunks per worker a job is cut into (claimed dynamically where there are atomics).
#[cfg_attr(not(target_has_atomic = "ptr"), allow(dead_code))]
const CHUNKS_PER_WORKER: usize = 4;

/// A buffer whose disjoint parts are written by different workers of one job.
pub struct Shared<'b, T> {
    ptr: *mut T,
    len: usize,
    _buf: PhantomData<&'b mut [T]>,
}

// SAFETY: a `Shared` only hands out parts through `part`, whose callers promise that no two
// live parts overlap (each worker writes its own rows), so sharing it is sharing `&mut [T]`s.
unsafe impl<T: Send> Sync for Shared<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Shared<'_, T> {}

impl<'b, T> Shared<'b, T> {
    /// Shares `buf` for the length of its borrow.
    pub fn new(buf: &'b mut [T]) -> Self {
        Shared { ptr: buf.as_mut_ptr(), len: buf.len(), _buf: PhantomData }
    }

    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `start..start + len` (panics when outside the buffer).
    ///
    /// # Safety
    /// No other part overlapping these elements may be alive at the same time (in any thread).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len), "part out of bounds");
        // SAFETY: in bounds (asserted), the buffer is borrowed mutably for 'b, and the caller
        // guarantees this part is not aliased.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// Runs `job(range)` over ranges covering `0..len` exactly once, whose starts are multiples
/// of `align`, on as many workers as `macs` multiply-adds of work pay for (inline, as one
/// range, when that is one).
///
/// With atomics, the work is cut into up to `CHUNKS_PER_WORKER` chunks per worker that the
/// workers claim one by one, so that a worker whose core is taken by another process (a shared
/// host) holds up only its current chunk, not a fixed share.
pub fn split_job<W: Workers + ?Sized>(
    workers: &W,
    len: usize,
    align: usize,
    macs: usize,
    job: &(dyn Fn(Range<usize>) + Sync),
) {
    let max = len.div_ceil(align.max(1));
    let min_work = workers.min_work_per_worker().max(1);
    let parts = workers.count().min(macs / min_work).min(max).max(1);
    if parts <= 1 {
        return job(0..len);
    }
    #[cfg(target_has_atomic = "ptr")]
    {
        use core::sync::atomic::{AtomicUsize, Ordering};
        let chunks = (parts * CHUNKS_PER_WORKER).min(max).max(parts);
        let next = AtomicUsize::new(0);
        workers.run(&|i| {
            if i >= parts {
                return;
            }
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                job(split_aligned(len, chunks, c, align));
            }
        });
    }
    #[cfg(not(target_has_atomic = "ptr"))]
    workers.run(&|i| {
        if i < parts {
            job(split_aligned(len, parts, i, align))
        }
    });
}

/// [`split_job`] over the rows of several outputs computed in one job (q, k and v; w1 and
/// w3): their row counts `rows` are concatenated and split, and `job(t, r)` gets the rows `r`
/// of output `t` in each range.
pub fn split_concat<W: Workers + ?Sized>(
    workers: &W,
    rows: &[usize],
    align: usize,
    macs: usize,
    job: &(dyn Fn(usize, Range<usize>) + Sync),
) {
    let total = rows.iter().sum();
    split_job(workers, total, align, macs, &|range| {
        let mut off = 0;
        for (t, &n) in rows.iter().enumerate() {
            let (s, e) = (range.start.max(off), range.end.min(off + n));
            if s < e {
                job(t, s - off..e - off);
            }
            off += n;
        }
    });
}

/// Runs `f(first_row, out_chunk)` over `out` split into contiguous chunks, one per worker,
/// using no more workers than `out.len() / min_rows`.
pub fn for_rows<W: Workers + ?Sized>(
    workers: &W,
    out: &mut [f32],
    min_rows: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let len = out.len();
    let parts = workers.count().min(len / min_rows.max(1)).max(1);
    if parts == 1 {
        f(0, out);
        return;
    }
    let out = Shared::new(out);
    workers.run(&|i| {
        if i >= parts {
            return;
        }
        let range = split(len, parts, i);
        // SAFETY: `split` gives disjoint ranges for distinct i, and each index runs once.
        f(range.start, unsafe { out.part(range.start, range.len()) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_exactly() {
        for len in 0..50 {
            for parts in 1..7 {
                let mut next = 0;
                for i in 0..parts {
                    let r = split(len, parts, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn split_aligned_covers_exactly_on_boundaries() {
        for len in 0..100 {
            for parts in 1..7 {
                let mut next = 0;
                for i in 0..parts {
                    let r = split_aligned(len, parts, i, 16);
                    assert_eq!(r.start, next);
                    assert!(r.start.is_multiple_of(16) || r.start == len);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }
}
