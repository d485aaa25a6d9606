//! `Transformer::new` allocates what `Footprint` plans, once: the heap's peak while building
//! equals what it holds afterwards, which equals `Footprint::allocated` (no second run state, no
//! reallocation, nothing uncounted), for both numerics, prefill batches and context caps.

use esp_llm_engine::checkpoint::bundle::{self, Quant};
use esp_llm_engine::kernels;
use esp_llm_engine::{Checkpoint, Footprint, Layout as F32Layout, Numerics, Options, Transformer};
use esp_llm_fixtures::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The system allocator, counting the bytes held and their peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = HELD.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counters only observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the worst case: both blocks alive at once.
        add(new_size);
        HELD.fetch_sub(layout.size(), SeqCst);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test in this binary, so that no other test allocates while it measures.
#[test]
fn peak_is_the_planned_footprint() {
    let fp32 = model_bytes("stories260K.bin");
    let tok = model_bytes("tok512.bin");
    let g64 = {
        let ck = Checkpoint::parse(&fp32).unwrap();
        bundle::pack(&ck, &tok, Quant::Q8(Some(64)), &mut |_| {}).unwrap().0
    };
    let models =
        [("fp32", fp32.clone()), ("q80", model_bytes("stories260K_q80.bin")), ("g64", g64)];
    let mut n = 0;
    for (name, bytes) in &models {
        for numerics in [Numerics::Float, Numerics::Fixed] {
            if numerics == Numerics::Fixed && *name == "fp32" {
                continue;
            }
            for (prefill, layout) in [(1, F32Layout::RowMajor), (16, F32Layout::Interleaved)] {
                for cap in [None, Some(100)] {
                    let ck = Checkpoint::parse(bytes).unwrap();
                    let seq = cap.unwrap_or(ck.config.seq_len);
                    let kernels = kernels::best();
                    let resolved = layout.resolve(kernels, &ck.weights);
                    let planned = Footprint::of(&ck.config, &ck.weights, seq, prefill, numerics)
                        .unwrap()
                        .with_layout(&ck.weights, resolved);
                    let options =
                        Options { seq_len: cap, numerics, prefill, layout, ..Options::default() };
                    let base = HELD.load(SeqCst);
                    PEAK.store(base, SeqCst);
                    let t = Transformer::new(ck, options).unwrap();
                    let (peak, held) = (PEAK.load(SeqCst) - base, HELD.load(SeqCst) - base);
                    let what = format!("{name} {numerics:?} prefill {prefill} cap {cap:?}");
                    assert_eq!(held, planned.allocated(), "{what}: held");
                    assert_eq!(peak, planned.allocated(), "{what}: peak");
                    assert_eq!(t.footprint(), planned, "{what}");
                    assert!(planned.state.kv_cache > 0 && planned.derived > 0, "{what}");
                    // Only the fp32 model has f32 matrices to repack.
                    let repacks = *name == "fp32" && layout == F32Layout::Interleaved;
                    assert_eq!(t.layout(), resolved, "{what}");
                    assert_eq!(planned.repacked > 0, repacks, "{what}: repacked");
                    drop(t);
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 20);
}
