//! What a `no_std` static library needs from its host C program: memory and a way to die.
//!
//! Allocation goes to the C library's `malloc`/`memalign`/`realloc`/`free` (newlib on ESP-IDF
//! and Arduino, where `memalign` and `free` share one heap: PSRAM too when the project enables
//! `CONFIG_SPIRAM_USE_MALLOC`), so everything the engine holds shows up in the program's own
//! heap statistics. A panic, which the engine's checked parsing should never reach, calls C's
//! `abort()`: on ESP-IDF that prints the backtrace and restarts the chip. The crate is built
//! with `panic = "abort"`, so nothing ever unwinds into C.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn memalign(align: usize, size: usize) -> *mut c_void;
    fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
    fn abort() -> !;
}

/// The alignment every `malloc` result has: a pointer's size is the least C libraries give
/// (ESP-IDF's heap aligns to 4 bytes on its 32-bit chips, newlib's malloc to 8).
const MALLOC_ALIGN: usize = core::mem::size_of::<usize>();

struct CAllocator;

// SAFETY: every block comes from the C heap with at least the layout's size and alignment, and
// goes back to it through `free` (valid for both `malloc` and `memalign` blocks).
unsafe impl GlobalAlloc for CAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C allocation calls; NULL is passed on as the allocation failure.
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                malloc(layout.size()).cast()
            } else {
                memalign(layout.align(), layout.size()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above.
        unsafe { free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: `ptr` came from `malloc`; C's realloc keeps malloc's alignment.
            unsafe { realloc(ptr.cast(), new_size).cast() }
        } else {
            // C's realloc does not keep a larger alignment: allocate, copy, free.
            // SAFETY: the new layout is valid (same alignment, size checked by the caller), and
            // both blocks are live for the copy.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: CAllocator = CAllocator;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: C's abort() takes no arguments and does not return.
    unsafe { abort() }
}
