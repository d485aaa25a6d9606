//! Pixel snapshots of the screen layer: a fixed story, scrolling, wrap edge cases, long words,
//! non-ASCII pieces. Each test renders into a framebuffer and compares it, pixel for pixel,
//! with a PNG in `tests/snapshots/`. The PNGs were written by these tests and then checked by
//! eye; a change in rendering fails the test, which writes what it drew beside the target dir
//! (`target/screen-snapshots/NAME.actual.png`) to look at. `UPDATE_SNAPSHOTS=1` rewrites them
//! (then look at every changed PNG before committing it).

use embedded_graphics::prelude::*;
use esp_llm_screen::{Config, Framebuffer, Screen, Status, LCD2_SIZE};
use std::path::PathBuf;

/// The stories260K greedy continuation of "The cat sat on the mat" (from llama2.c's run.c),
/// the input text of the fixed-story snapshots.
const CAT_MAT: &str = "The cat sat on the mat. It was a big, red ball. The ball was very small and shiny. It was a big, red ball. The ball was very happy.\nOne day, a little boy named Tim came to the box. He saw the ball and wanted to play with it. He wanted to play with the ball. He said, \"I want to play with it!\"\nTim said, \"Yes, I can play with you.\" They played together and had fun. They played together every day.\nOne day, Tim's mom came into the room. She saw the ball and said, \"Tim, you can't find it. It's not a";

/// Splits text into token-like pieces: words with their leading space, long words cut in two
/// (BPE pieces are often parts of words), newlines on their own.
fn pieces(text: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push(b"\n".to_vec());
        }
        for (j, word) in line.split(' ').enumerate() {
            let lead = if j > 0 { " " } else { "" };
            let w = format!("{lead}{word}");
            let cut = w.char_indices().map(|(k, _)| k).nth(4).filter(|_| w.chars().count() > 6);
            match cut {
                Some(k) => {
                    out.push(w.as_bytes()[..k].to_vec());
                    out.push(w.as_bytes()[k..].to_vec());
                }
                None => out.push(w.into_bytes()),
            }
        }
    }
    out
}

/// Renders a story the way the firmware does: the prompt's pieces forced, then the story's,
/// drawing whenever `push` says a draw is due, with the status of that moment.
fn render(size: Size, config: Config, prompt: &str, story: &[Vec<u8>]) -> (Screen, Framebuffer) {
    let mut screen = Screen::with_config(size, config);
    let mut fb = Framebuffer::new(size);
    let prompt = pieces(prompt);
    let mut status = Status { cap: 512, temperature: 0.8, ..Status::default() };
    for (i, piece) in prompt.iter().chain(story).enumerate() {
        let forced = i < prompt.len();
        status.pos = i + 1;
        if !forced {
            status.generated += 1;
            status.tok_per_s = Some(24.5);
        }
        if screen.push(piece, forced) {
            screen.set_status(&status);
            screen.draw(&mut fb).unwrap();
        }
    }
    screen.finish();
    screen.set_status(&status);
    screen.draw(&mut fb).unwrap();
    (screen, fb)
}

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

fn write_png(path: &std::path::Path, fb: &Framebuffer) {
    let size = fb.size();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size.width, size.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&fb.to_rgb8()).unwrap();
}

fn read_png(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}: not an RGB PNG", path.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Compares `fb` with `tests/snapshots/NAME.png`, pixel for pixel.
fn check(name: &str, fb: &Framebuffer) {
    let path = snapshot_dir().join(format!("{name}.png"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        write_png(&path, fb);
        eprintln!("wrote {} (look at it before committing)", path.display());
        return;
    }
    assert!(
        path.exists(),
        "{} is missing: run with UPDATE_SNAPSHOTS=1, then look at the PNG",
        path.display()
    );
    let (w, h, want) = read_png(&path);
    let size = fb.size();
    let have = fb.to_rgb8();
    if (w, h) == (size.width, size.height) && want == have {
        return;
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screen-snapshots");
    std::fs::create_dir_all(&out).unwrap();
    let actual = out.join(format!("{name}.actual.png"));
    write_png(&actual, fb);
    let differ = want.chunks(3).zip(have.chunks(3)).filter(|(a, b)| a != b).count();
    let first = want.chunks(3).zip(have.chunks(3)).position(|(a, b)| a != b);
    panic!(
        "{name}: rendering changed ({w}x{h} snapshot vs {}x{} drawn, {differ} pixels differ, first at {:?}); drawn: {}",
        size.width,
        size.height,
        first.map(|i| (i as u32 % size.width.max(1), i as u32 / size.width.max(1))),
        actual.display()
    );
}

#[test]
fn fixed_story_on_the_lcd2() {
    let story = pieces(&CAT_MAT["The cat sat on the mat".len()..]);
    let (screen, fb) = render(LCD2_SIZE, Config::default(), "The cat sat on the mat", &story);
    // 29 columns of 8 px (4 px margins), 23 rows of 13 px under the 12 px status band.
    assert_eq!((screen.text().cols(), screen.text().rows()), (29, 23));
    check("story", &fb);
}

#[test]
fn long_story_scrolls_by_half_screens() {
    let story: Vec<Vec<u8>> =
        (0..3).flat_map(|_| pieces(&CAT_MAT["The cat sat on the mat".len()..])).collect();
    let (screen, fb) = render(LCD2_SIZE, Config::default(), "The cat sat on the mat", &story);
    // The prompt scrolled away; the last words are on the screen.
    let lines = screen.text().lines();
    assert!(!lines.iter().any(|l| l.contains("The cat sat")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("It's not a")), "{lines:?}");
    check("scroll", &fb);
}

#[test]
fn edge_cases_on_a_small_screen() {
    // 160 x 120: 19 columns, 8 rows. Long words, a space on the edge, Latin-1 letters, a
    // character split over byte pieces, characters the font lacks, bytes that are not UTF-8,
    // control characters.
    let story: Vec<Vec<u8>> = vec![
        b" Supercalifragilisticexpialidocious".to_vec(),
        b" word".to_vec(),
        b" edge1234567890".to_vec(),
        b" x".to_vec(),
        "\nCaf\u{e9} na\u{ef}ve \u{fc}ber \u{a3}5".as_bytes().to_vec(),
        b"\nit\xE2".to_vec(),
        b"\x80".to_vec(),
        b"\x99s".to_vec(),
        " \u{65e5}\u{672c} \u{1F600}".as_bytes().to_vec(),
        b" bad\xFF\xC3(".to_vec(),
        b" tab\tbell\x07 end".to_vec(),
    ];
    let (screen, fb) = render(Size::new(160, 120), Config::default(), "Edge", &story);
    assert_eq!(
        screen.text().lines(),
        [
            "Edge",
            "Supercalifragilisti",
            "cexpialidocious",
            "word edge1234567890",
            "x",
            "Caf\u{e9} na\u{ef}ve \u{fc}ber \u{a3}5",
            "it\u{FFFD}s \u{FFFD}\u{FFFD} \u{FFFD} bad\u{FFFD}\u{FFFD}(",
            "tab bell\u{FFFD} end",
        ]
    );
    check("edge", &fb);
}

#[test]
fn drawing_piece_by_piece_gives_the_same_pixels_as_drawing_once() {
    let story: Vec<Vec<u8>> =
        (0..2).flat_map(|_| pieces(&CAT_MAT["The cat sat on the mat".len()..])).collect();
    let (_, streamed) = render(LCD2_SIZE, Config::default(), "The cat sat on the mat", &story);
    // The same text in one push and one draw.
    let mut screen = Screen::new(LCD2_SIZE);
    let mut once = Framebuffer::new(LCD2_SIZE);
    let prompt: Vec<u8> = pieces("The cat sat on the mat").concat();
    screen.push(&prompt, true);
    screen.push(&story.concat(), false);
    let n = story.len() + pieces("The cat sat on the mat").len();
    let status = Status {
        generated: story.len(),
        pos: n,
        cap: 512,
        tok_per_s: Some(24.5),
        estimated: false,
        temperature: 0.8,
    };
    screen.set_status(&status);
    screen.draw(&mut once).unwrap();
    assert!(streamed.to_rgb8() == once.to_rgb8(), "incremental drawing left stale pixels");
}

#[test]
fn only_changed_cells_are_redrawn() {
    let mut screen = Screen::new(LCD2_SIZE);
    let mut fb = Framebuffer::new(LCD2_SIZE);
    screen.push(b"Once upon a time", true);
    screen.draw(&mut fb).unwrap();
    let cell = 8 * 13;
    // Nothing changed: nothing drawn.
    fb.written = 0;
    assert_eq!(screen.draw(&mut fb).unwrap(), 0);
    assert_eq!(fb.written, 0);
    // One word: its cells only (the space is already blank on the screen).
    screen.push(b" there", false);
    assert_eq!(screen.draw(&mut fb).unwrap(), 5);
    assert_eq!(fb.written, 5 * cell);
    // A status change redraws only the characters that differ.
    let mut s = Status { generated: 9, pos: 10, cap: 512, temperature: 1.0, ..Status::default() };
    screen.set_status(&s);
    let first = screen.draw(&mut fb).unwrap();
    assert_eq!(first, s.line().chars().filter(|&c| c != ' ').count());
    s.generated = 10;
    s.pos = 11;
    screen.set_status(&s);
    // Fixed-width fields: "  9 tok  10/512" -> " 10 tok  11/512" changes three cells.
    assert_eq!(screen.draw(&mut fb).unwrap(), 3);
}

#[test]
fn status_line_reads_as_documented() {
    let s = Status {
        generated: 42,
        pos: 48,
        cap: 512,
        tok_per_s: Some(18.25),
        estimated: false,
        temperature: 1.0,
    };
    assert_eq!(s.line(), " 42 tok  48/512  18.2 tok/s  t=1");
    let s = Status { tok_per_s: Some(30.0), estimated: true, temperature: 0.8, ..s };
    assert_eq!(s.line(), " 42 tok  48/512 ~30.0 tok/s  t=0.8");
    assert_eq!(Status { tok_per_s: None, ..s }.line(), " 42 tok  48/512  t=0.8");
    let s = Status { generated: 1234, pos: 7, cap: 1024, tok_per_s: Some(123.375), ..s };
    assert_eq!(s.line(), "1234 tok    7/1024 ~123.4 tok/s  t=0.8");
}

#[test]
fn tiny_and_degenerate_screens_do_not_panic() {
    for (w, h) in [(0, 0), (1, 1), (7, 12), (8, 27), (9, 40), (400, 20)] {
        let size = Size::new(w, h);
        let (_, fb) = render(size, Config::default(), "Hi", &pieces("a b\nc d\u{e9} \u{1F600}"));
        assert_eq!(fb.size(), size);
    }
}
