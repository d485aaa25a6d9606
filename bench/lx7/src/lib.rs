//! Bare-metal ESP32-S3 (Xtensa LX7) harness for the engine under Espressif's QEMU (`-M esp32s3
//! -kernel`).
//!
//! `start.S` sets up the core (vectors, register windows, FPU/PIE enable, stack, .bss, the
//! ICOUNT counter) and calls `lx7bench_main`, which the link step binds to one of the
//! configurations below: parse the embedded model, greedy-generate 64 steps from "Once upon a
//! time" with the unchanged engine, and print through semihosting the tokens, the text and the
//! instructions retired inside `Transformer::forward`. `lx7bench_check` runs the kernel checks
//! instead. Exit status: 0 on success, 1 on an engine error or panic, 2 on a CPU exception, 3 on
//! a kernel that differs from its scalar twin.
#![no_std]

#[cfg(not(target_arch = "xtensa"))]
compile_error!("esp-llm-lx7bench is a bare-metal Xtensa program; build it with run.sh");

extern crate alloc;

mod check;
#[path = "../../rv32/src/report.rs"]
pub mod report;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use esp_llm_engine::kernels::{self, Kernels};
use esp_llm_engine::parallel::Serial;
use esp_llm_engine::{Checkpoint, Math, Numerics, Options, Sampler, Tokenizer, Transformer, BOS};

/// The prompt, as in bench/rv32.
pub const PROMPT: &[u8] = b"Once upon a time";
/// Forward passes per run (prompt positions included): 64, or `$LX7BENCH_STEPS` at build time.
pub const STEPS: usize = match option_env!("LX7BENCH_STEPS") {
    Some(s) => parse_usize(s),
    None => 64,
};

const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "LX7BENCH_STEPS must be a number");
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}

/// 16-byte aligned bytes, so the engine views tensors in place (the bundle's PIE rows need it).
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// stories260K.bin (fp32, v0).
pub static FP32_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("LX7BENCH_FP32")));
/// stories260K_q80.bin (llama2.c int8 Q8_0 v2, groups of 4).
pub static Q80_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("LX7BENCH_Q80")));
/// The int8 bundle (groups of 32) that build.rs packs from stories260K.bin.
pub static INT8_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("LX7BENCH_INT8")));
/// The int4 bundle (groups of 32, `esp-llm pack --quant q4`) that build.rs packs from
/// stories260K.bin.
pub static INT4_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("LX7BENCH_INT4")));
/// tok512.bin.
pub static TOKENIZER: &[u8] = include_bytes!(env!("LX7BENCH_TOK"));

extern "C" {
    /// Instructions retired so far (the ICOUNT debug register; wraps at 2^32).
    fn lx7_icount() -> u32;
    /// Semihosting write to stdout.
    fn lx7_write(buf: *const u8, len: usize);
    /// Ends the emulator with this exit status.
    fn lx7_exit(code: u32) -> !;
    /// Semihosting open(2) on the host (`path` NUL-terminated); a descriptor or -1.
    fn lx7_open(path: *const u8, flags: u32, mode: u32) -> i32;
    /// Semihosting read(2): bytes read, 0 at the end of the file, -1 on an error.
    fn lx7_read(fd: i32, buf: *mut u8, len: usize) -> i32;
    /// Semihosting close(2).
    fn lx7_close(fd: i32) -> i32;
}

/// The ICOUNT register: instructions retired so far, modulo 2^32.
#[inline(always)]
pub fn icount() -> u32 {
    // SAFETY: reads a debug register (start.S); no memory is touched.
    unsafe { lx7_icount() }
}

/// Ends QEMU with `code` as its exit status.
pub fn exit(code: u32) -> ! {
    // SAFETY: the semihosting exit call does not return.
    unsafe { lx7_exit(code) }
}

/// Semihosting console writer, buffered.
pub struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    /// An empty console buffer.
    pub const fn new() -> Self {
        Console { buf: [0; 256], len: 0 }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            // SAFETY: the buffer holds `len` initialized bytes for the duration of the call.
            unsafe { lx7_write(self.buf.as_ptr(), self.len) };
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A bump allocator over the DRAM after the stack (`__heap_start`/`__heap_end` from link.x);
/// `dealloc` frees nothing. One core, no interrupts: never used concurrently.
struct Bump {
    next: UnsafeCell<usize>,
}

// SAFETY: single core, no interrupts: the allocator is never used concurrently.
unsafe impl Sync for Bump {}

extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: only this single-threaded allocator touches `next`; the heap symbols are
        // addresses from the linker script, never read through.
        unsafe {
            let next = &mut *self.next.get();
            if *next == 0 {
                *next = core::ptr::addr_of!(__heap_start) as usize;
            }
            let end = core::ptr::addr_of!(__heap_end) as usize;
            let start = match next.checked_add(layout.align() - 1) {
                Some(v) => v & !(layout.align() - 1),
                None => return core::ptr::null_mut(),
            };
            match start.checked_add(layout.size()) {
                Some(new_next) if new_next <= end => {
                    *next = new_next;
                    start as *mut u8
                }
                _ => core::ptr::null_mut(),
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static HEAP: Bump = Bump { next: UnsafeCell::new(0) };

/// Runs `f` and then gives back everything it allocated (the bump pointer returns to where it
/// was). `f` must not leak an allocation past its return: its result is plain data.
pub fn with_scratch<R: Copy>(f: impl FnOnce() -> R) -> R {
    // SAFETY: single core; reading the bump pointer.
    let mark = unsafe { *HEAP.next.get() };
    let r = f();
    // SAFETY: every allocation made by `f` was dropped when it returned (R is Copy and holds
    // no allocation), so the memory above `mark` is unused again.
    unsafe { *HEAP.next.get() = mark };
    r
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut c = Console::new();
    let _ = writeln!(c, "PANIC: {info}");
    c.flush();
    exit(1)
}

/// LLVM's traps (`unreachable`, failed bounds in some intrinsics) call `abort`.
#[no_mangle]
extern "C" fn abort() -> ! {
    let mut c = Console::new();
    let _ = writeln!(c, "ABORT");
    c.flush();
    exit(1)
}

/// The allocation error handler (run.sh's allocator shim calls it).
#[no_mangle]
extern "C" fn lx7bench_oom(size: usize, align: usize) -> ! {
    let mut c = Console::new();
    let _ = writeln!(c, "OUT OF MEMORY: {size} bytes aligned to {align}");
    c.flush();
    exit(1)
}

/// The kernels the run uses: `kernels::best()` (the LX7 assembly with feature `lx7`), or the
/// Scalar reference with feature `scalar`.
fn chosen() -> &'static dyn Kernels {
    #[cfg(feature = "scalar")]
    return &kernels::Scalar;
    #[cfg(not(feature = "scalar"))]
    kernels::best()
}

/// Instructions spent inside the matmul kernels (feature `phases`, `run.sh --phases`).
#[cfg(feature = "phases")]
struct Counted {
    inner: &'static dyn Kernels,
    count: UnsafeCell<[u64; 3]>,
}

// SAFETY: one core, no interrupts: the counters are only touched by the thread running forward.
#[cfg(feature = "phases")]
unsafe impl Sync for Counted {}

#[cfg(feature = "phases")]
impl Counted {
    fn add(&self, which: usize, t0: u32) {
        let n = icount().wrapping_sub(t0) as u64;
        // SAFETY: see the Sync impl: no concurrent access.
        unsafe { (*self.count.get())[which] += n }
    }
    fn get(&self) -> [u64; 3] {
        // SAFETY: see the Sync impl.
        unsafe { *self.count.get() }
    }
}

#[cfg(feature = "phases")]
impl Kernels for Counted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        let t0 = icount();
        self.inner.matmul_f32(out, w, x);
        self.add(0, t0);
    }
    fn matmul_q8(
        &self,
        out: &mut [f32],
        wq: &[i8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        let t0 = icount();
        self.inner.matmul_q8(out, wq, ws, xq, xs, group);
        self.add(1, t0);
    }
    fn matmul_q4(
        &self,
        out: &mut [f32],
        wq: &[u8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        let t0 = icount();
        self.inner.matmul_q4(out, wq, ws, xq, xs, group);
        self.add(2, t0);
    }
}

/// Runs one configuration and exits QEMU.
fn run(name: &str, model: &'static Aligned<[u8]>) -> ! {
    let mut c = Console::new();
    let code = match bench(&mut c, name, &model.0) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(c, "ERROR: {e}");
            1
        }
    };
    c.flush();
    exit(code)
}

/// fp32: stories260K.bin.
#[no_mangle]
pub extern "C" fn lx7bench_fp32() -> ! {
    run("stories260K.bin", FP32_MODEL)
}

/// int8: the group-32 bundle, float numerics (what the S3 firmware runs).
#[no_mangle]
pub extern "C" fn lx7bench_int8() -> ! {
    run("stories260K_q8g32.ellb", INT8_MODEL)
}

/// int4: the group-32 int4 bundle (every matrix int4, norms f32), float numerics.
#[no_mangle]
pub extern "C" fn lx7bench_int4() -> ! {
    run("stories260K_q4g32.ellb", INT4_MODEL)
}

/// q80: llama2.c's group-4 file.
#[no_mangle]
pub extern "C" fn lx7bench_q80() -> ! {
    run("stories260K_q80.bin", Q80_MODEL)
}

/// The kernel checks: every kernel of `kernels::best()` against the scalar twin.
#[no_mangle]
pub extern "C" fn lx7bench_check() -> ! {
    let mut c = Console::new();
    let ok = check::run(&mut c, chosen());
    c.flush();
    exit(if ok { 0 } else { 3 })
}

/// Where the emulated PSRAM appears on the data bus: the cache MMU's virtual window
/// (0x3C000000, 512 pages of 64 KiB; QEMU hw/misc/esp32s3_cache.c).
pub const PSRAM_BASE: usize = 0x3C00_0000;
/// The PSRAM mapped, in bytes: run QEMU with `-m 32M` (fewer megabytes leave the upper pages
/// without memory behind them).
pub const PSRAM_SIZE: usize = 32 << 20;
/// The MMU table of the cache (DR_REG_MMU_TABLE): entry i maps virtual page i.
const MMU_TABLE: usize = 0x600C_5000;
/// Entry bits: page number (14 bits), invalid (bit 14), type (bit 15: 1 = PSRAM).
const MMU_PSRAM: u32 = 1 << 15;
/// The bundle `lx7bench_big` loads into PSRAM (relative to QEMU's working directory).
pub const BIG_BUNDLE: &[u8] = b"lx7big.ellb\0";
/// Forward passes of `lx7bench_big` (positions 0..BIG_STEPS): 8, or `$LX7BENCH_BIG_STEPS`.
pub const BIG_STEPS: usize = match option_env!("LX7BENCH_BIG_STEPS") {
    Some(s) => parse_usize(s),
    None => 8,
};

/// Maps PSRAM page i at PSRAM_BASE + i * 64 KiB, identity, for the whole window.
fn map_psram() {
    for i in 0..PSRAM_SIZE >> 16 {
        // SAFETY: the cache MMU table is a device register array of 512 words.
        unsafe { core::ptr::write_volatile((MMU_TABLE + 4 * i) as *mut u32, MMU_PSRAM | i as u32) };
    }
}

/// Reads the host file `path` (NUL-terminated) to PSRAM_BASE by semihosting; its length.
fn load_to_psram(path: &[u8], limit: usize) -> Result<usize, &'static str> {
    // SAFETY: `path` is NUL-terminated; the reads go to the mapped PSRAM window, below `limit`.
    unsafe {
        let fd = lx7_open(path.as_ptr(), 0, 0);
        if fd < 0 {
            return Err("cannot open the bundle (semihosting open)");
        }
        let mut len = 0usize;
        loop {
            let want = (limit - len).min(1 << 20);
            if want == 0 {
                lx7_close(fd);
                return Err("the bundle does not fit in the PSRAM window");
            }
            let n = lx7_read(fd, (PSRAM_BASE + len) as *mut u8, want);
            if n < 0 {
                lx7_close(fd);
                return Err("semihosting read failed");
            }
            if n == 0 {
                break;
            }
            len += n as usize;
        }
        lx7_close(fd);
        Ok(len)
    }
}

/// The 15M-shape (or any) bundle from the host, in the emulated PSRAM: map the PSRAM, load the
/// bundle `lx7big.ellb` by semihosting, verify its CRC, then greedy-run BIG_STEPS forward
/// passes from BOS with the full context (the heap, KV cache included, is in PSRAM too: run.sh
/// links this configuration with `__heap_start` past the bundle).
#[no_mangle]
pub extern "C" fn lx7bench_big() -> ! {
    map_psram();
    let mut c = Console::new();
    let code = match big(&mut c) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(c, "ERROR: {e}");
            1
        }
    };
    c.flush();
    exit(code)
}

fn big(c: &mut Console) -> Result<(), alloc::string::String> {
    use alloc::string::ToString;
    use esp_llm_engine::checkpoint::bundle;
    let heap = core::ptr::addr_of!(__heap_start) as usize;
    if !(PSRAM_BASE..PSRAM_BASE + PSRAM_SIZE).contains(&heap) {
        return Err("the heap is not in PSRAM: link lx7bench_big with run.sh --shape".to_string());
    }
    let t_load = icount();
    let len = load_to_psram(BIG_BUNDLE, heap - PSRAM_BASE).map_err(|e| e.to_string())?;
    let load = icount().wrapping_sub(t_load);
    // SAFETY: `len` bytes were just written there; nothing writes them again (the heap starts
    // past the bundle).
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(PSRAM_BASE as *const u8, len) };
    let t_start = icount();
    bundle::verify(bytes).map_err(|e| e.to_string())?;
    let b = bundle::Bundle::parse(bytes).map_err(|e| e.to_string())?;
    let cfg = b.checkpoint.config;
    let vocab = cfg.vocab_size;
    let kern = chosen();
    let options = Options {
        kernels: kern,
        workers: Box::new(Serial),
        numerics: Numerics::Float,
        math: Math::Portable,
        ..Options::default()
    };
    let tokenizer = Tokenizer::from_bytes(b.tokenizer, vocab).map_err(|e| e.to_string())?;
    let mut transformer = Transformer::new(b.checkpoint, options).map_err(|e| e.to_string())?;
    let mut sampler = Sampler::new(vocab, 0.0, 0.9, 0).map_err(|e| e.to_string())?;
    let setup = icount().wrapping_sub(t_start);

    let mut tokens: Vec<u32> = Vec::with_capacity(BIG_STEPS + 1);
    let mut text: Vec<u8> = Vec::new();
    let mut per_pos: Vec<u64> = Vec::with_capacity(BIG_STEPS);
    let mut token = BOS;
    tokens.push(token);
    for pos in 0..BIG_STEPS {
        let t0 = icount();
        let logits = transformer.forward(token, pos).map_err(|e| e.to_string())?;
        per_pos.push(icount().wrapping_sub(t0) as u64);
        let next = sampler.sample(logits);
        text.extend_from_slice(tokenizer.decode(token, next));
        tokens.push(next);
        token = next;
    }
    let forwards = per_pos.len() as u64;
    let fwd_total: u64 = per_pos.iter().sum();
    let _ = writeln!(
        c,
        "model: lx7big.ellb dim {} hidden {} layers {} heads {} kv_heads {} vocab {} seq {}",
        cfg.dim,
        cfg.hidden_dim,
        cfg.n_layers,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.vocab_size,
        cfg.seq_len
    );
    let _ = writeln!(c, "bundle_bytes: {len}");
    let _ = writeln!(c, "kernels: {}", kern.name());
    let _ = writeln!(c, "numerics: float");
    let _ = writeln!(c, "stop: steps");
    let _ = report::tokens_line(c, &tokens);
    let _ = report::text_line(c, &text);
    let _ = writeln!(c, "forwards: {forwards}");
    let _ = writeln!(c, "icount_load: {load}");
    let _ = writeln!(c, "icount_setup: {setup}");
    let _ = write!(c, "icount_per_position:");
    for n in &per_pos {
        let _ = write!(c, " {n}");
    }
    let _ = writeln!(c);
    let _ = writeln!(c, "icount_forward_total: {fwd_total}");
    let _ = writeln!(c, "icount_forward_first: {}", per_pos.first().copied().unwrap_or(0));
    let _ = writeln!(c, "icount_forward_last: {}", per_pos.last().copied().unwrap_or(0));
    let _ = writeln!(c, "icount_forward_min: {}", per_pos.iter().min().copied().unwrap_or(0));
    let _ = writeln!(c, "icount_forward_max: {}", per_pos.iter().max().copied().unwrap_or(0));
    let _ = writeln!(c, "icount_per_token: {}", fwd_total / forwards.max(1));
    Ok(())
}

fn bench(c: &mut Console, name: &str, model: &'static [u8]) -> Result<(), esp_llm_engine::Error> {
    let t_start = icount();
    let ckpt = Checkpoint::parse(model)?;
    let vocab = ckpt.config.vocab_size;
    #[cfg(feature = "phases")]
    let counted: &'static Counted =
        Box::leak(Box::new(Counted { inner: chosen(), count: UnsafeCell::new([0; 3]) }));
    #[cfg(feature = "phases")]
    let kern: &'static dyn Kernels = counted;
    #[cfg(not(feature = "phases"))]
    let kern = chosen();
    // The context is capped at the steps run: the emulator's DRAM (1.4 MiB) cannot hold the
    // fp32 model with a 512-position f32 KV cache, and no position past STEPS is ever read, so
    // the instruction counts are those of the full context.
    let options = Options {
        seq_len: Some(STEPS),
        kernels: kern,
        workers: Box::new(Serial),
        numerics: Numerics::Float,
        math: Math::Portable,
        ..Options::default()
    };
    let mut transformer = Transformer::new(ckpt, options)?;
    let tokenizer = Tokenizer::from_bytes(TOKENIZER, vocab)?;
    let mut sampler = Sampler::new(vocab, 0.0, 0.9, 0)?;
    let prompt = tokenizer.encode(PROMPT);
    let setup = icount().wrapping_sub(t_start);

    // The loop of engine::Generator (run.c's), with the counter read around each forward.
    let mut tokens: Vec<u32> = Vec::with_capacity(STEPS + 1);
    let mut text: Vec<u8> = Vec::new();
    let mut per_pos: Vec<u64> = Vec::with_capacity(STEPS);
    let mut token = prompt[0];
    tokens.push(token);
    let mut stop = "steps";
    for pos in 0..STEPS {
        let t0 = icount();
        let logits = transformer.forward(token, pos)?;
        per_pos.push(icount().wrapping_sub(t0) as u64);
        let next = if pos + 1 < prompt.len() { prompt[pos + 1] } else { sampler.sample(logits) };
        if next == BOS {
            stop = "bos";
            break;
        }
        text.extend_from_slice(tokenizer.decode(token, next));
        tokens.push(next);
        token = next;
    }
    let forwards = per_pos.len() as u64;
    let fwd_total: u64 = per_pos.iter().sum();

    let _ = writeln!(c, "model: {name}");
    let _ = writeln!(c, "kernels: {}", kern.name());
    let _ = writeln!(c, "numerics: float");
    let _ = writeln!(c, "stop: {stop}");
    let _ = report::tokens_line(c, &tokens);
    let _ = report::text_line(c, &text);
    let _ = writeln!(c, "forwards: {forwards}");
    let _ = writeln!(c, "icount_setup: {setup}");
    let _ = writeln!(c, "icount_forward_total: {fwd_total}");
    let _ = writeln!(c, "icount_forward_first: {}", per_pos.first().copied().unwrap_or(0));
    let _ = writeln!(c, "icount_forward_last: {}", per_pos.last().copied().unwrap_or(0));
    #[cfg(feature = "phases")]
    {
        let [f, q, q4] = counted.get();
        let _ = writeln!(c, "icount_matmul_f32_per_token: {}", f / forwards.max(1));
        let _ = writeln!(c, "icount_matmul_q8_per_token: {}", q / forwards.max(1));
        let _ = writeln!(c, "icount_matmul_q4_per_token: {}", q4 / forwards.max(1));
    }
    let _ = writeln!(c, "icount_per_token: {}", fwd_total / forwards.max(1));
    Ok(())
}
