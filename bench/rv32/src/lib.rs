//! Bare-metal RV32 harness for the engine under `qemu-system-riscv32 -M virt -bios none`.
//!
//! `_start` (below, first in `.text`) sets up gp, sp, the trap vector and the FPU (if any),
//! zeroes `.bss` and calls the binary's `rv32bench_main`, which calls [`run`]: parse the
//! embedded model, greedy-generate 64 steps from "Once upon a time" with the unchanged engine,
//! and print through semihosting the tokens, the text and the instructions retired inside
//! `Transformer::forward` (the `instret`/`instreth` CSRs, exact under `-icount shift=0`).
//! Exit status goes through semihosting `SYS_EXIT_EXTENDED`: 0 on success, 1 on an engine
//! error or panic, 2 on a CPU trap.
#![no_std]

#[cfg(not(target_arch = "riscv32"))]
compile_error!("esp-llm-rv32bench is a bare-metal riscv32 program; build it with run.sh");

extern crate alloc;

#[path = "report.rs"]
pub mod report;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use esp_llm_engine::kernels::{self, Kernels};
use esp_llm_engine::parallel::Serial;
use esp_llm_engine::{Checkpoint, Math, Numerics, Options, Sampler, Tokenizer, Transformer, BOS};

/// The prompt and number of forward passes (prompt positions included), as in the issue.
pub const PROMPT: &[u8] = b"Once upon a time";
/// Forward passes per run: 64, or `$RV32BENCH_STEPS` at build time (profile.sh uses fewer).
pub const STEPS: usize = match option_env!("RV32BENCH_STEPS") {
    Some(s) => parse_usize(s),
    None => 64,
};

const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "RV32BENCH_STEPS must be a number");
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}

/// 16-byte aligned bytes, so the engine can view f32 tensors in place.
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// stories260K.bin (fp32, v0).
pub static FP32_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("RV32BENCH_FP32")));
/// stories260K_q80.bin (int8 Q8_0, v2).
pub static Q80_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("RV32BENCH_Q80")));
/// The group-64 int8 bundle packed by build.rs from stories260K.bin.
pub static Q8G64_MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("RV32BENCH_Q8G64")));
/// tok512.bin.
pub static TOKENIZER: &[u8] = include_bytes!(env!("RV32BENCH_TOK"));

global_asm!(
    r#"
    .section .text._start, "ax"
    .global _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    la t0, trap_entry
    csrw mtvec, t0
    /* mstatus.FS = dirty: turns the FPU on where there is one (WARL, ignored on rv32imac). */
    li t0, 0x6000
    csrs mstatus, t0
    la t0, __bss_start
    la t1, __bss_end
1:
    bgeu t0, t1, 2f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 1b
2:
    call rv32bench_main
3:
    j 3b

    .section .text.trap_entry, "ax"
    .balign 4
trap_entry:
    la sp, __stack_top
    call rv32bench_trap
4:
    j 4b
"#
);

/// One semihosting call: `op` in a0, `arg` in a1, the result comes back in a0. The magic
/// sequence must be uncompressed and must not straddle a page, hence `norvc` and the
/// alignment.
#[inline(never)]
fn semihost(op: usize, arg: usize) -> usize {
    let mut a0 = op;
    // SAFETY: the RISC-V semihosting sequence traps into QEMU, which reads the parameter
    // block at `arg` (a valid pointer for the duration of the call, or 0) and writes only a0.
    unsafe {
        asm!(
            ".balign 16",
            ".option push",
            ".option norvc",
            "slli x0, x0, 0x1f",
            "ebreak",
            "srai x0, x0, 7",
            ".option pop",
            inout("a0") a0,
            in("a1") arg,
            options(nostack),
        );
    }
    a0
}

const SYS_WRITE0: usize = 0x04;
const SYS_EXIT_EXTENDED: usize = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: usize = 0x20026;

/// Ends QEMU with `code` as its exit status.
pub fn exit(code: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code as usize];
    semihost(SYS_EXIT_EXTENDED, block.as_ptr() as usize);
    loop {
        core::hint::spin_loop();
    }
}

/// Semihosting console writer; buffers up to 255 bytes per `SYS_WRITE0`.
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
            self.buf[self.len] = 0;
            semihost(SYS_WRITE0, self.buf.as_ptr() as usize);
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
            // NUL would end SYS_WRITE0's string early; the report never prints one.
            if self.len == self.buf.len() - 1 {
                self.flush();
            }
            self.buf[self.len] = if b == 0 { b'?' } else { b };
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

/// The 64-bit retired-instruction counter (`instreth:instret`, re-read if the low half wrapped).
#[inline(always)]
pub fn instret() -> u64 {
    loop {
        let (hi, lo, hi2): (u32, u32, u32);
        // SAFETY: reading the unprivileged instret counters has no side effects.
        unsafe {
            asm!(
                "csrr {0}, instreth",
                "csrr {1}, instret",
                "csrr {2}, instreth",
                out(reg) hi, out(reg) lo, out(reg) hi2,
                options(nomem, nostack),
            );
        }
        if hi == hi2 {
            return ((hi as u64) << 32) | lo as u64;
        }
    }
}

/// A bump allocator over the RAM after `.stack` (linker symbols `__heap_start`/`__heap_end`);
/// `dealloc` frees nothing. The program is single-threaded and never re-enters the allocator.
struct Bump {
    next: UnsafeCell<usize>,
}

// SAFETY: single hart, no interrupts: the allocator is never used concurrently.
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut c = Console::new();
    let _ = writeln!(c, "PANIC: {info}");
    c.flush();
    exit(1)
}

#[no_mangle]
extern "C" fn rv32bench_trap() -> ! {
    let (cause, epc, tval): (usize, usize, usize);
    // SAFETY: reading machine-mode trap CSRs has no side effects.
    unsafe {
        asm!("csrr {0}, mcause", "csrr {1}, mepc", "csrr {2}, mtval",
             out(reg) cause, out(reg) epc, out(reg) tval, options(nomem, nostack));
    }
    let mut c = Console::new();
    let _ = writeln!(c, "TRAP: mcause={cause:#x} mepc={epc:#010x} mtval={tval:#x}");
    c.flush();
    exit(2)
}

/// Instructions spent in the matmul kernels (feature `phases`).
#[cfg(feature = "phases")]
struct Counted {
    inner: &'static dyn Kernels,
    instret: UnsafeCell<[u64; 2]>,
}

// SAFETY: single hart; the counters are only touched from the one thread that runs forward.
#[cfg(feature = "phases")]
unsafe impl Sync for Counted {}

#[cfg(feature = "phases")]
impl Counted {
    fn add(&self, which: usize, n: u64) {
        // SAFETY: see the Sync impl: no concurrent access.
        unsafe { (*self.instret.get())[which] += n }
    }
    fn get(&self) -> [u64; 2] {
        // SAFETY: see the Sync impl.
        unsafe { *self.instret.get() }
    }
}

#[cfg(feature = "phases")]
impl Kernels for Counted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        let t0 = instret();
        self.inner.matmul_f32(out, w, x);
        self.add(0, instret() - t0);
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
        let t0 = instret();
        self.inner.matmul_q8(out, wq, ws, xq, xs, group);
        self.add(1, instret() - t0);
    }
    fn matmul_q8_fixed(
        &self,
        out: &mut [i32],
        wq: &[i8],
        ws: &[i16],
        xq: &[i8],
        group: usize,
        scale: esp_llm_engine::kernels::Rescale,
    ) {
        let t0 = instret();
        self.inner.matmul_q8_fixed(out, wq, ws, xq, group, scale);
        self.add(1, instret() - t0);
    }
}

/// Runs the benchmark on one embedded model (float numerics) and exits QEMU.
pub fn run(name: &str, model: &'static Aligned<[u8]>) -> ! {
    run_with(name, model, Numerics::Float)
}

/// Runs the benchmark on one embedded model with the given numerics and exits QEMU.
pub fn run_with(name: &str, model: &'static Aligned<[u8]>, numerics: Numerics) -> ! {
    let mut c = Console::new();
    let code = match bench(&mut c, name, &model.0, numerics) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(c, "ERROR: {e}");
            1
        }
    };
    c.flush();
    exit(code)
}

/// The fixed-point int8 kernel of `kernels::best()` (on RV32 an assembly loop) against the
/// scalar loop on pseudo-random shapes and values, including -128/127 extremes and groups that
/// take the fallback paths. Prints the number of cases, or the first difference and `false`.
fn check_fixed_kernel(c: &mut Console) -> bool {
    let mut seed = 0x9E37_79B9u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let best = kernels::best();
    let mut cases = 0;
    for group in [8usize, 16, 24, 32, 64, 4, 12] {
        for groups in 1..4 {
            for rows in [1usize, 4, 7, 8, 13] {
                let stride = group * groups;
                let byte = |v: u32| match v % 16 {
                    0 => -128i8,
                    1 => 127,
                    _ => (v >> 8) as i8,
                };
                let wq: Vec<i8> = (0..rows * stride).map(|_| byte(next())).collect();
                let xq: Vec<i8> = (0..stride).map(|_| byte(next())).collect();
                let ws: Vec<i16> = (0..rows * groups).map(|_| (next() >> 16) as i16).collect();
                let scale = esp_llm_engine::kernels::Rescale {
                    m: (next() >> 17) as i32,
                    shift: next() % 40,
                };
                let (mut a, mut b) = (vec![0i32; rows], vec![1i32; rows]);
                esp_llm_engine::kernels::scalar::matmul_q8_fixed(
                    &mut a, &wq, &ws, &xq, group, scale,
                );
                best.matmul_q8_fixed(&mut b, &wq, &ws, &xq, group, scale);
                if a != b {
                    let _ = writeln!(
                        c,
                        "kernel_check: group {group} x{groups} rows {rows}: {a:?} != {b:?}"
                    );
                    return false;
                }
                cases += 1;
            }
        }
    }
    let _ = writeln!(c, "kernel_check: {} equal to scalar in {cases} cases", best.name());
    true
}

fn bench(
    c: &mut Console,
    name: &str,
    model: &'static [u8],
    numerics: Numerics,
) -> Result<(), esp_llm_engine::Error> {
    if numerics == Numerics::Fixed && !check_fixed_kernel(c) {
        c.flush();
        exit(3); // a wrong kernel: no figure is worth printing
    }
    let t_start = instret();
    let ckpt = Checkpoint::parse(model)?;
    let vocab = ckpt.config.vocab_size;
    // kernels::best(), or the Scalar reference with feature `scalar` (run.sh --scalar).
    #[cfg(not(feature = "scalar"))]
    let chosen: &'static dyn Kernels = kernels::best();
    #[cfg(feature = "scalar")]
    let chosen: &'static dyn Kernels = &kernels::Scalar;
    #[cfg(feature = "phases")]
    let counted: &'static Counted =
        Box::leak(Box::new(Counted { inner: chosen, instret: UnsafeCell::new([0; 2]) }));
    #[cfg(feature = "phases")]
    let kern: &'static dyn Kernels = counted;
    #[cfg(not(feature = "phases"))]
    let kern: &'static dyn Kernels = chosen;
    // The portable math, as on a board (also when this builds for a host with `std`).
    let options = Options {
        kernels: kern,
        workers: Box::new(Serial),
        numerics,
        math: Math::Portable,
        ..Options::default()
    };
    let mut transformer = Transformer::new(ckpt, options)?;
    let tokenizer = Tokenizer::from_bytes(TOKENIZER, vocab)?;
    let mut sampler = Sampler::new(vocab, 0.0, 0.9, 0)?;
    let prompt = tokenizer.encode(PROMPT);
    let setup = instret() - t_start;

    // The loop of engine::Generator (run.c's), with the counter read around each forward.
    let mut tokens: Vec<u32> = Vec::with_capacity(STEPS + 1);
    let mut text: Vec<u8> = Vec::new();
    let mut per_pos: Vec<u64> = Vec::with_capacity(STEPS);
    let mut token = prompt[0];
    tokens.push(token);
    let mut stop = "steps";
    let t_gen = instret();
    for pos in 0..STEPS {
        let t0 = instret();
        let logits = transformer.forward(token, pos)?;
        per_pos.push(instret() - t0);
        let next = if pos + 1 < prompt.len() { prompt[pos + 1] } else { sampler.sample(logits) };
        if next == BOS {
            stop = "bos";
            break;
        }
        text.extend_from_slice(tokenizer.decode(token, next));
        tokens.push(next);
        token = next;
    }
    let gen_total = instret() - t_gen;
    let forwards = per_pos.len() as u64;
    let fwd_total: u64 = per_pos.iter().sum();

    let _ = writeln!(c, "model: {name}");
    let _ = writeln!(c, "kernels: {}", kern.name());
    let _ = writeln!(c, "numerics: {}", numerics.name());
    let _ = writeln!(c, "stop: {stop}");
    let _ = report::tokens_line(c, &tokens);
    let _ = report::text_line(c, &text);
    let _ = writeln!(c, "forwards: {forwards}");
    let _ = writeln!(c, "instret_setup: {setup}");
    let _ = writeln!(c, "instret_generate_total: {gen_total}");
    let _ = writeln!(c, "instret_forward_total: {fwd_total}");
    let _ = writeln!(c, "instret_forward_first: {}", per_pos.first().copied().unwrap_or(0));
    let _ = writeln!(c, "instret_forward_last: {}", per_pos.last().copied().unwrap_or(0));
    #[cfg(feature = "phases")]
    {
        let [f, q] = counted.get();
        let _ = writeln!(c, "instret_matmul_f32_per_token: {}", f / forwards.max(1));
        let _ = writeln!(c, "instret_matmul_q8_per_token: {}", q / forwards.max(1));
    }
    let _ = writeln!(c, "instret_per_token: {}", fwd_total / forwards.max(1));
    Ok(())
}
