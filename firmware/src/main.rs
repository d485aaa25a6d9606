//! esp-llm firmware: llama2.c stories on an ESP32, prompts over serial.
//!
//! Board: ESP32-S3 with 8 MB octal PSRAM and 16 MB flash (e.g. ESP32-S3-LCD-2), or an
//! ESP32-P4, ESP32-C6 or ESP32-C3 DevKit (one chip feature each; `build.sh` selects it).
//! Memory: the model bundle is copied from the `model` flash partition into internal SRAM
//! when it fits with room to spare, else into PSRAM, else (chips without PSRAM) read in place
//! through the flash MMU; the context is capped to what the KV cache can hold in what is left. Flash layout: `partitions-4mb.csv` / `partitions-16mb.csv`.
//! Console: UART0 at 115200 baud and USB-Serial-JTAG; a line is answered on its own port.
//! Screen (feature `display`): the story on the ESP32-S3-LCD-2's ST7789 (pins: `display.rs`).
//!
//! Everything that can be tested without a chip (line assembly, commands, partition table,
//! bundle probe, context planning, the dual-core protocol) is in `crates/board`.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
#[cfg(feature = "dual-core")]
mod cores;
#[cfg(feature = "display")]
mod display;
#[cfg(feature = "flash-map")]
mod flashmap;
mod storage;

use alloc::boxed::Box;
use alloc::string::String;
use console::{Console, Port};
use core::fmt::Write;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::time::Instant;
use esp_hal::uart::{self, Uart};
use esp_llm_board::command::{self, Command, Settings, HELP};
use esp_llm_board::line::{Event as LineEvent, LineAssembler, CTRL_C};
use esp_llm_board::plan;
use esp_llm_board::summary::{Banner, Summary, INTERRUPTED, PROMPT, READY};
use esp_llm_engine::parallel::{Serial, Workers};
use esp_llm_engine::{
    kernels, Event, Format, Generator, Numerics, Options, Sampler, Tokenizer, Transformer,
};

/// Whether this chip lacks a floating-point unit (ESP32-C3/C6: rv32imc/rv32imac).
const NO_FPU: bool = cfg!(all(target_arch = "riscv32", not(target_feature = "f")));

esp_bootloader_esp_idf::esp_app_desc!();

#[cfg(feature = "esp32s3")]
const CHIP: &str = "ESP32-S3";
#[cfg(feature = "esp32p4")]
const CHIP: &str = "ESP32-P4";
#[cfg(feature = "esp32c6")]
const CHIP: &str = "ESP32-C6";
#[cfg(feature = "esp32c3")]
const CHIP: &str = "ESP32-C3";

/// Longest accepted line in bytes (prompts are short; longer lines are rejected whole).
const LINE_MAX: usize = 512;
/// RAM kept free after planning the context, for the REPL and the sampler's buffers.
const STATE_MARGIN: usize = 24 * 1024;
/// The prompt `/bench` runs greedily.
const BENCH_PROMPT: &str = "Once upon a time";

/// The model, ready to generate.
struct Model {
    transformer: Transformer<'static>,
    tokenizer: Tokenizer<'static>,
    loaded: storage::Loaded,
    format: Format,
    /// The model's own context length; `transformer.config.seq_len` is the capped one.
    seq_len: usize,
    cap: usize,
}

#[esp_hal::main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The system timer's unit 0 (behind `Instant`) counts from reset on silicon; QEMU's ESP32-C3
    // model starts it stopped, which would freeze every timing. Setting the bit is a no-op on
    // a real chip.
    #[cfg(feature = "esp32c3")]
    esp_hal::peripherals::SYSTIMER::regs().conf().modify(|_, w| w.timer_unit0_work_en().set_bit());

    // Heap: bootloader-reclaimed RAM, a static block, and PSRAM where the chip has it.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    #[cfg(feature = "esp32c3")]
    esp_alloc::heap_allocator!(size: 200 * 1024);
    #[cfg(feature = "esp32c6")]
    esp_alloc::heap_allocator!(size: 300 * 1024);
    #[cfg(any(feature = "esp32s3", feature = "esp32p4"))]
    esp_alloc::heap_allocator!(size: 256 * 1024);
    #[cfg(feature = "psram")]
    esp_alloc::psram_allocator!(p.PSRAM, esp_hal::psram);

    let uart_config = uart::Config::default().with_baudrate(115_200);
    #[cfg(feature = "esp32c3")]
    let (rx, tx) = (p.GPIO20, p.GPIO21);
    #[cfg(feature = "esp32c6")]
    let (rx, tx) = (p.GPIO17, p.GPIO16);
    #[cfg(feature = "esp32s3")]
    let (rx, tx) = (p.GPIO44, p.GPIO43);
    #[cfg(feature = "esp32p4")]
    let (rx, tx) = (p.GPIO38, p.GPIO37);
    let uart = Uart::new(p.UART0, uart_config).expect("UART0 config").with_rx(rx).with_tx(tx);
    let mut con = Console::new(
        uart,
        #[cfg(feature = "usb-serial-jtag")]
        esp_hal::usb::usb_serial_jtag::UsbSerialJtag::new(p.USB_DEVICE),
    );

    let _ = write!(con.out(Port::Uart), "{}", Banner(CHIP));
    #[cfg(feature = "display")]
    let lcd = match display::Lcd::new(p.SPI2, crate::lcd_pins!(p)) {
        Ok(lcd) => Some(lcd),
        Err(e) => {
            let _ = writeln!(con.out(Port::Uart), "display: {e}; the story goes to serial only");
            None
        }
    };
    let mut flash = esp_storage::FlashStorage::new(p.FLASH);
    let loaded = storage::load(&mut flash);

    // The workers live for the whole program; `prepare` may need several boxes of them.
    #[cfg(feature = "dual-core")]
    let two: Option<&'static esp_llm_board::cores::TwoCores<'static>> =
        match cores::start(p.CPU_CTRL) {
            Ok(two) => Some(Box::leak(Box::new(two))),
            Err(e) => {
                let _ = writeln!(con.out(Port::Uart), "second core: {e}; running on one core");
                None
            }
        };
    let workers = || -> Box<dyn Workers> {
        #[cfg(feature = "dual-core")]
        if let Some(two) = two {
            return Box::new(two);
        }
        Box::new(Serial)
    };

    let mut no_model = String::new();
    let model = match loaded.and_then(|l| prepare(l, &workers)) {
        Ok(m) => Some(m),
        Err(msg) => {
            no_model.clone_from(&msg);
            let _ = write!(
                con.out(Port::Uart),
                "no model: {msg}\nFlash a bundle with: espflash write-bin <model partition offset> model.ellb\n\
                 (see firmware/README.md). The REPL runs without it.\n"
            );
            None
        }
    };
    if let Some(m) = &model {
        let _ = write!(con.out(Port::Uart), "{}", ModelLine(m));
    }
    let _ = write!(con.out(Port::Uart), "{READY}{PROMPT}");

    let mut repl = Repl {
        settings: Settings::default(),
        echo: true,
        model,
        no_model,
        #[cfg(feature = "display")]
        lcd,
    };
    let mut lines: [LineAssembler<LINE_MAX>; 2] = [LineAssembler::new(), LineAssembler::new()];
    let mut buf = [0u8; 64];
    loop {
        for &port in con.ports() {
            let n = con.read(port, &mut buf);
            if con.uart_overrun {
                con.uart_overrun = false;
                let _ = write!(con.out(Port::Uart), "\n(input overrun: some bytes were lost)\n");
            }
            let asm = &mut lines[port as usize];
            for &b in &buf[..n] {
                let Some(ev) = asm.push(b) else {
                    if repl.echo && (b == 0x08 || b == 0x7f) {
                        con.write(port, b"\x08 \x08");
                    } else if repl.echo && !asm.overflowed() && b >= 0x20 {
                        con.write(port, &[b]);
                    }
                    continue;
                };
                if repl.echo {
                    con.write(port, b"\r\n");
                }
                match ev {
                    LineEvent::Line(line) => {
                        let line = String::from(line);
                        repl.handle(&line, port, &mut con);
                    }
                    LineEvent::TooLong { limit } => {
                        let _ =
                            writeln!(con.out(port), "line too long (over {limit} bytes), ignored");
                    }
                    LineEvent::NotUtf8 { at } => {
                        let _ = writeln!(con.out(port), "line is not UTF-8 (byte {at}), ignored");
                    }
                    LineEvent::Interrupt => {
                        let _ = writeln!(con.out(port), "{INTERRUPTED}");
                    }
                }
                let _ = write!(con.out(port), "{PROMPT}");
            }
        }
    }
}

/// Reads the tokenizer, sizes the context and builds the transformer, both through the chip
/// planner: the context is the longest whose footprint fits the free heap
/// ([`plan::context_cap`]), and the build shrinks it by an eighth while the heap's regions
/// cannot hold the KV cache's blocks ([`plan::build_shrinking`]).
fn prepare(
    loaded: storage::Loaded,
    workers: &dyn Fn() -> Box<dyn Workers>,
) -> Result<Model, String> {
    use alloc::format;
    let ckpt = &loaded.bundle.checkpoint;
    let tokenizer = Tokenizer::from_bytes(loaded.bundle.tokenizer, ckpt.config.vocab_size)
        .map_err(|e| format!("tokenizer: {e}"))?;
    let (format, seq_len) = (ckpt.format, ckpt.config.seq_len);
    // Chips without an FPU (ESP32-C3/C6) run int8 models in fixed point: on the rv32imac
    // yardstick 1.45 M instead of ~10 M instructions per token for stories260K (bench/rv32,
    // docs/performance.md). The tokens then match `esp-llm run --numerics fixed` on the host.
    let fixed = NO_FPU && esp_llm_engine::fixed::supports(&ckpt.weights);
    let numerics = if fixed { Numerics::Fixed } else { Numerics::Float };
    let budget = esp_alloc::HEAP.free().saturating_sub(STATE_MARGIN);
    let cap = plan::context_cap(&ckpt.config, &ckpt.weights, budget, numerics)
        .ok_or_else(|| format!("not enough RAM for even one position ({budget} bytes free)"))?;
    let (transformer, cap) = plan::build_shrinking(cap, |cap| {
        let (kernels, workers) = (kernels::best(), workers());
        let options =
            Options { seq_len: Some(cap), kernels, workers, numerics, ..Options::default() };
        Transformer::new(ckpt.clone(), options)
    })
    .map_err(|e| format!("model: {e}"))?;
    Ok(Model { transformer, tokenizer, loaded, format, seq_len, cap })
}

struct ModelLine<'a>(&'a Model);

impl core::fmt::Display for ModelLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        let c = &m.transformer.config;
        writeln!(
            f,
            "model: dim {} hidden {} layers {} heads {}/{} vocab {} context {} (cap {}), {} bytes in {}",
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.vocab_size,
            m.seq_len,
            m.cap,
            m.loaded.bytes,
            m.loaded.place.name()
        )
    }
}

/// The REPL's state between lines.
struct Repl {
    settings: Settings,
    echo: bool,
    model: Option<Model>,
    /// Why there is no model, for /info (the boot message may have gone to the other port).
    no_model: String,
    /// The screen, when it came up.
    #[cfg(feature = "display")]
    lcd: Option<display::Lcd>,
}

impl Repl {
    fn handle(&mut self, line: &str, port: Port, con: &mut Console<'_>) {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(con.out(port), "{e}");
                return;
            }
        };
        let s = &mut self.settings;
        if s.apply(&cmd) {
            let _ = writeln!(con.out(port), "{s}");
            return;
        }
        match cmd {
            Command::Help => {
                let _ = writeln!(con.out(port), "{HELP}");
            }
            Command::Echo(on) => self.echo = on,
            Command::Info => info(con.out(port), self.model.as_ref(), &self.no_model),
            Command::Prompt(text) => match &mut self.model {
                Some(m) => {
                    #[cfg(feature = "display")]
                    let lcd = self.lcd.as_mut();
                    #[cfg(not(feature = "display"))]
                    let lcd = None;
                    run(con, port, m, text, s, true, lcd)
                }
                None => {
                    let _ = writeln!(con.out(port), "no model loaded (see /info)");
                }
            },
            Command::Bench => match &mut self.model {
                Some(m) => {
                    let greedy = Settings { temperature: 0.0, ..*s };
                    let _ = writeln!(
                        con.out(port),
                        "bench: greedy, prompt \"{BENCH_PROMPT}\", steps {}",
                        greedy.steps
                    );
                    // Not drawn: /bench times the engine alone.
                    run(con, port, m, BENCH_PROMPT, &greedy, false, None);
                }
                None => {
                    let _ = writeln!(con.out(port), "no model loaded (see /info)");
                }
            },
            _ => {}
        }
    }
}

fn info(mut out: console::Out<'_, '_>, model: Option<&Model>, no_model: &str) {
    use esp_alloc::MemoryCapability::{External, Internal};
    // CpuClock's Debug is the variant name, e.g. `_160MHz`.
    let clock = alloc::format!("{:?}", CpuClock::max());
    let _ = writeln!(out, "chip: {CHIP}, CPU clock {}", clock.trim_start_matches('_'));
    let _ = writeln!(
        out,
        "free heap: internal SRAM {} bytes, PSRAM {} bytes",
        esp_alloc::HEAP.free_caps(Internal.into()),
        esp_alloc::HEAP.free_caps(External.into())
    );
    match model {
        Some(m) => {
            let _ = write!(out, "{}", ModelLine(m));
            let p = &m.loaded.partition;
            let _ = writeln!(
                out,
                "partition '{}' at 0x{:x}, {} bytes; weights {}, bundle in {}",
                p.label(),
                p.offset,
                p.size,
                m.format,
                m.loaded.place.name()
            );
            let copied = m.transformer.weights.copied_bytes();
            let _ = writeln!(
                out,
                "weights read in place: {}",
                if copied == 0 { "all" } else { "no, misaligned f32 runs copied to the heap" }
            );
            if copied > 0 {
                let _ = writeln!(out, "copied weight bytes: {copied}");
            }
            let st = m.transformer.state_size();
            let _ = writeln!(
                out,
                "context cap {} of {} positions (KV cache {} bytes, activations {} bytes)",
                m.cap, m.seq_len, st.kv_cache, st.activations
            );
            let _ = writeln!(
                out,
                "kernels: {}, numerics: {}, workers: {}",
                m.transformer.kernels().name(),
                m.transformer.numerics().name(),
                m.transformer.worker_count()
            );
        }
        None => {
            let _ = writeln!(out, "no model loaded: {no_model}");
        }
    }
}

/// Without the `display` feature there is no screen to draw on.
#[cfg(not(feature = "display"))]
enum Lcd {}

#[cfg(feature = "display")]
use display::Lcd;

/// Generates one story on `port`, streaming text if `print` and drawing it on `lcd`; Ctrl-C on
/// any port stops it.
fn run(
    con: &mut Console<'_>,
    port: Port,
    m: &mut Model,
    prompt: &str,
    s: &Settings,
    print: bool,
    mut lcd: Option<&mut Lcd>,
) {
    let vocab = m.transformer.config.vocab_size;
    let mut sampler = match Sampler::new(vocab, s.temperature, s.topp, s.seed) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(con.out(port), "sampler: {e}");
            return;
        }
    };
    // A byte the tokenizer has no id for is an error line, not text silently dropped.
    let tokens = match m.tokenizer.try_encode(prompt.as_bytes()) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(con.out(port), "{e}");
            return;
        }
    };
    let gen = match Generator::new(&mut m.transformer, &m.tokenizer, &mut sampler, tokens, s.steps)
    {
        Ok(g) => g,
        Err(e) => {
            let _ = writeln!(con.out(port), "{e}");
            return;
        }
    };
    con.flush();
    let start = Instant::now();
    let mut n = 0usize;
    let mut buf = [0u8; 64];
    let mut interrupted = false;
    #[cfg(feature = "display")]
    let mut status =
        esp_llm_screen::Status { cap: m.cap, temperature: s.temperature, ..Default::default() };
    #[cfg(feature = "display")]
    let mut first_sampled: Option<Instant> = None;
    #[cfg(feature = "display")]
    if let Some(lcd) = lcd.as_deref_mut() {
        lcd.begin();
    }
    for ev in gen {
        match ev {
            Ok(Event::Token { text, pos, forced, .. }) => {
                n += 1;
                if print {
                    con.out(port).bytes(text);
                }
                #[cfg(feature = "display")]
                if let Some(lcd) = lcd.as_deref_mut() {
                    status.pos = pos + 1;
                    if !forced {
                        status.generated += 1;
                        // Speed over the sampled tokens (the prompt is a prefill batch).
                        let t0 = *first_sampled.get_or_insert_with(Instant::now);
                        let us = t0.elapsed().as_micros();
                        if status.generated > 1 && us > 0 {
                            status.tok_per_s =
                                Some((status.generated - 1) as f32 * 1e6 / us as f32);
                        }
                    }
                    lcd.token(text, forced, &status);
                }
                #[cfg(not(feature = "display"))]
                let _ = (pos, forced, &mut lcd);
            }
            Ok(Event::Done(_)) => break,
            Err(e) => {
                let _ = write!(con.out(port), "\nerror: {e}\n");
                break;
            }
        }
        // Ctrl-C from any port stops the story; other bytes typed meanwhile are dropped.
        for &p in con.ports() {
            let k = con.read(p, &mut buf);
            interrupted |= buf[..k].contains(&CTRL_C);
        }
        if interrupted {
            break;
        }
    }
    let micros = start.elapsed().as_micros();
    // End the streamed text's line (a story need not end with a newline), then the summary.
    match (print, interrupted) {
        (_, true) => {
            let _ = writeln!(con.out(port), "{}^C", if print { "\n" } else { "" });
        }
        (true, false) => {
            let _ = writeln!(con.out(port));
        }
        (false, false) => {}
    }
    let _ = writeln!(con.out(port), "{}", Summary { tokens: n, micros });
    #[cfg(feature = "display")]
    if let Some(lcd) = lcd {
        lcd.end(&status);
        match &lcd.error {
            Some(e) => {
                let _ = writeln!(con.out(port), "display: drawing failed ({e}), stopped");
            }
            None => {
                let _ = writeln!(
                    con.out(port),
                    "display: {} draws, {} cells, {} ms of drawing",
                    lcd.draws,
                    lcd.cells,
                    lcd.micros / 1000
                );
            }
        }
    }
}
