//! Splitting one job over several workers (host threads, or the ESP32-S3's second core).
//!
//! A matmul's output rows are cut into contiguous ranges, one per worker; each worker writes
//! only its own range, so no locking is needed, only a barrier at the end of the job.

#[cfg(any(test, feature = "std"))]
pub mod pool;

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

/// A raw pointer to an output buffer whose disjoint parts are handed to different workers.
struct SharedOut(*mut f32);
// SAFETY: the pointer is only used to build disjoint sub-slices, one per worker (see for_rows).
unsafe impl Sync for SharedOut {}

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
    let ptr = SharedOut(out.as_mut_ptr());
    let ptr = &ptr;
    workers.run(&|i| {
        if i >= parts {
            return;
        }
        let range = split(len, parts, i);
        // SAFETY: `split` gives disjoint ranges within 0..len for distinct i, each worker index
        // runs once, and `out` stays mutably borrowed (unused) until `run` returns.
        let chunk = unsafe { core::slice::from_raw_parts_mut(ptr.0.add(range.start), range.len()) };
        f(range.start, chunk);
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
