//! The story as a grid of character cells: UTF-8 decoding across pieces, word wrap, scrolling.
//!
//! Generated text arrives one token's bytes at a time, and a token may end inside a UTF-8
//! character (llama2.c's byte-fallback tokens `<0xE2>` `<0x80>` `<0x99>` spell one `’`). The
//! bytes of an unfinished character wait in `pending` until the rest arrives; bytes that can
//! never form a character, and characters the font has no glyph for, become one placeholder
//! cell each, so nothing is dropped silently and nothing panics.
//!
//! Wrapping works on whole characters (the font is monospaced: one character, one cell). A
//! word that would cross the right edge moves to the next row, unless it started the row (a
//! word longer than the row), which then breaks at the edge. A space that falls exactly on the
//! edge is the line break. When the cursor passes the last row the grid scrolls up by
//! `scroll` rows (several at once, so the screen is redrawn rarely: see `Screen::draw`).
//! Rows that scroll off are forgotten: only the current row can still change.

use alloc::vec::Vec;
use embedded_graphics::mono_font::MonoFont;

/// How a cell is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ink {
    /// Text of the prompt (tokens forced from the user's input).
    Prompt,
    /// Generated text.
    Story,
    /// A byte sequence that is not UTF-8, or a character the font cannot draw.
    Placeholder,
    /// The status line.
    Status,
}

/// One character cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub ch: char,
    pub ink: Ink,
}

impl Cell {
    /// An empty cell. Every space is stored as this, whatever its ink, so that blank cells
    /// compare equal and are never redrawn for nothing.
    pub const BLANK: Cell = Cell { ch: ' ', ink: Ink::Story };
    /// What undrawable input becomes.
    pub const PLACEHOLDER: Cell = Cell { ch: '\u{FFFD}', ink: Ink::Placeholder };

    /// Whether this cell is drawn as background only.
    pub fn is_blank(&self) -> bool {
        self.ch == ' ' && self.ink != Ink::Placeholder
    }
}

/// The streaming layout of a story on `cols` x `rows` cells.
pub struct Text {
    cols: usize,
    rows: usize,
    /// `rows * cols` cells, row-major.
    cells: Vec<Cell>,
    /// The cursor: the cell the next character goes into. `col == cols` means the row is full.
    row: usize,
    col: usize,
    /// Column where the word being written began on the cursor's row (`None` after a space).
    word: Option<usize>,
    /// Rows to scroll when the cursor leaves the last row (1..=rows).
    scroll: usize,
    /// The first bytes of a character split over pieces (at most 3).
    pending: [u8; 4],
    pending_len: usize,
    /// Scratch for joining `pending` with the next piece, and for moving a word down.
    joined: Vec<u8>,
    word_buf: Vec<Cell>,
    font: &'static MonoFont<'static>,
}

impl Text {
    /// An empty grid; `cols` and `rows` are at least 1, `scroll` is clamped to `1..=rows`.
    pub fn new(cols: usize, rows: usize, scroll: usize, font: &'static MonoFont<'static>) -> Text {
        let (cols, rows) = (cols.max(1), rows.max(1));
        Text {
            cols,
            rows,
            cells: alloc::vec![Cell::BLANK; cols * rows],
            row: 0,
            col: 0,
            word: None,
            scroll: scroll.clamp(1, rows),
            pending: [0; 4],
            pending_len: 0,
            joined: Vec::new(),
            word_buf: Vec::with_capacity(cols),
            font,
        }
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All cells, row-major.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Empties the grid for a new story (the cursor goes back to the top left).
    pub fn clear(&mut self) {
        self.cells.fill(Cell::BLANK);
        self.row = 0;
        self.col = 0;
        self.word = None;
        self.pending_len = 0;
    }

    /// Whether the font has a glyph for `c` (fonts map unknown characters to their
    /// replacement glyph, usually `?`).
    pub fn drawable(&self, c: char) -> bool {
        let map = self.font.glyph_mapping;
        !c.is_control() && (c == '?' || map.index(c) != map.index('?'))
    }

    /// Adds one piece of text. A character cut at the end of `piece` waits for the next one.
    pub fn push(&mut self, piece: &[u8], ink: Ink) {
        let mut joined = core::mem::take(&mut self.joined);
        joined.clear();
        joined.extend_from_slice(&self.pending[..self.pending_len]);
        joined.extend_from_slice(piece);
        self.pending_len = 0;
        let mut chunks = joined.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            for c in chunk.valid().chars() {
                self.put(c, ink);
            }
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            // An invalid run at the very end that is only too short (not wrong) is the start
            // of a character whose other bytes come with the next piece.
            let unfinished = chunks.peek().is_none()
                && core::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
            if unfinished {
                self.pending[..bad.len()].copy_from_slice(bad);
                self.pending_len = bad.len();
            } else {
                self.put_cell(Cell::PLACEHOLDER);
            }
        }
        self.joined = joined;
    }

    /// Ends the story: a character still waiting for its last bytes becomes a placeholder.
    pub fn finish(&mut self) {
        if self.pending_len > 0 {
            self.pending_len = 0;
            self.put_cell(Cell::PLACEHOLDER);
        }
    }

    /// Places one character at the cursor.
    pub fn put(&mut self, c: char, ink: Ink) {
        match c {
            '\n' => self.newline(),
            '\r' => {}
            ' ' | '\t' => {
                self.word = None;
                if self.col == self.cols {
                    self.newline();
                } else {
                    self.set(Cell::BLANK);
                }
            }
            c if self.drawable(c) => self.put_cell(Cell { ch: c, ink }),
            _ => self.put_cell(Cell::PLACEHOLDER),
        }
    }

    /// Places a visible cell, wrapping the word it belongs to if the row is full.
    fn put_cell(&mut self, cell: Cell) {
        if self.col == self.cols {
            match self.word {
                // The word began after a space on this row: it moves down whole.
                Some(start) if start > 0 => {
                    let mut moved = core::mem::take(&mut self.word_buf);
                    moved.clear();
                    let base = self.row * self.cols;
                    moved.extend_from_slice(&self.cells[base + start..base + self.cols]);
                    self.cells[base + start..base + self.cols].fill(Cell::BLANK);
                    self.newline();
                    for &c in &moved {
                        self.set(c);
                    }
                    self.word_buf = moved;
                }
                // A word as long as the row: break it at the edge.
                _ => self.newline(),
            }
            self.word = Some(0);
        }
        if self.word.is_none() {
            self.word = Some(self.col);
        }
        self.set(cell);
    }

    /// Writes `cell` at the cursor and advances it (the row is not full).
    fn set(&mut self, cell: Cell) {
        let cell = if cell.is_blank() { Cell::BLANK } else { cell };
        self.cells[self.row * self.cols + self.col] = cell;
        self.col += 1;
    }

    /// Moves the cursor to the start of the next row, scrolling if it was the last.
    fn newline(&mut self) {
        self.col = 0;
        self.word = None;
        if self.row + 1 < self.rows {
            self.row += 1;
            return;
        }
        let n = self.scroll;
        self.cells.copy_within(n * self.cols.., 0);
        let len = self.cells.len();
        self.cells[len - n * self.cols..].fill(Cell::BLANK);
        self.row = self.rows - n;
    }

    /// The rows as strings, trailing blanks trimmed (placeholders as U+FFFD), for tests and
    /// for a text view of the screen.
    pub fn lines(&self) -> Vec<alloc::string::String> {
        self.cells
            .chunks(self.cols)
            .map(|row| {
                let s: alloc::string::String = row.iter().map(|c| c.ch).collect();
                alloc::string::String::from(s.trim_end())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::mono_font::iso_8859_1::FONT_8X13;

    fn text(cols: usize, rows: usize, scroll: usize) -> Text {
        Text::new(cols, rows, scroll, &FONT_8X13)
    }

    #[test]
    fn words_move_down_whole() {
        let mut t = text(10, 4, 1);
        t.push(b"Once upon a time there", Ink::Story);
        assert_eq!(t.lines(), ["Once upon", "a time", "there", ""]);
    }

    #[test]
    fn a_space_on_the_edge_is_the_line_break() {
        let mut t = text(5, 3, 1);
        t.push(b"abcde fgh", Ink::Story);
        assert_eq!(t.lines(), ["abcde", "fgh", ""]);
    }

    #[test]
    fn a_word_longer_than_the_row_breaks_at_the_edge() {
        let mut t = text(4, 4, 1);
        t.push(b"ab cdefghij k", Ink::Story);
        assert_eq!(t.lines(), ["ab", "cdef", "ghij", "k"]);
    }

    #[test]
    fn pieces_join_into_words_across_pushes() {
        let mut t = text(8, 3, 1);
        for piece in [&b"Lily"[..], b" wan", b"ted", b" to", b" play"] {
            t.push(piece, Ink::Story);
        }
        assert_eq!(t.lines(), ["Lily", "wanted", "to play"]);
    }

    #[test]
    fn a_character_split_over_pieces_is_one_cell() {
        let mut t = text(8, 2, 1);
        t.push(b"caf\xC3", Ink::Story);
        assert_eq!(t.lines()[0], "caf", "the lone lead byte waits");
        t.push(b"\xA9!", Ink::Story);
        assert_eq!(t.lines()[0], "café!");
        // U+2019 in three single-byte pieces, as byte-fallback tokens give it: the font has no
        // glyph for it, so it is one placeholder, not three.
        let mut t = text(8, 2, 1);
        for b in "it\u{2019}s".bytes() {
            t.push(&[b], Ink::Story);
        }
        assert_eq!(t.lines()[0], "it\u{FFFD}s");
        assert_eq!(t.cells()[2], Cell::PLACEHOLDER);
    }

    #[test]
    fn wrapping_counts_characters_not_bytes() {
        let mut t = text(3, 3, 1);
        t.push("ééééé ü".as_bytes(), Ink::Story);
        assert_eq!(t.lines(), ["ééé", "éé", "ü"]);
    }

    #[test]
    fn bad_bytes_and_undrawable_characters_become_placeholders() {
        let mut t = text(12, 2, 1);
        t.push(b"a\xFFb\xC3(c\x01d", Ink::Story);
        assert_eq!(t.lines()[0], "a\u{FFFD}b\u{FFFD}(c\u{FFFD}d");
        let mut t = text(12, 2, 1);
        t.push("日本 \u{1F600}".as_bytes(), Ink::Story);
        assert_eq!(t.lines()[0], "\u{FFFD}\u{FFFD} \u{FFFD}");
        // A character cut short by the end of the story.
        let mut t = text(12, 2, 1);
        t.push(b"x\xE2\x80", Ink::Story);
        assert_eq!(t.lines()[0], "x");
        t.finish();
        assert_eq!(t.lines()[0], "x\u{FFFD}");
    }

    #[test]
    fn scrolls_by_the_step_when_the_bottom_is_reached() {
        let mut t = text(4, 3, 1);
        t.push(b"1\n2\n3\n4", Ink::Story);
        assert_eq!(t.lines(), ["2", "3", "4"]);
        let mut t = text(4, 3, 2);
        t.push(b"1\n2\n3\n4", Ink::Story);
        assert_eq!(t.lines(), ["3", "4", ""]);
        // A word moving down from the last row scrolls too, and arrives whole.
        let mut t = text(6, 2, 1);
        t.push(b"aa bb\ncc dddd", Ink::Story);
        assert_eq!(t.lines(), ["cc", "dddd"]);
        // Scroll steps beyond the rows are clamped: the grid empties, the cursor goes home.
        let mut t = text(4, 2, 99);
        t.push(b"a\nb\nc", Ink::Story);
        assert_eq!(t.lines(), ["c", ""]);
    }

    #[test]
    fn inks_stay_with_their_characters_and_blanks_compare_equal() {
        let mut t = text(10, 2, 1);
        t.push(b"Hi", Ink::Prompt);
        t.push(b" you", Ink::Story);
        let c = t.cells();
        assert_eq!((c[0].ink, c[1].ink, c[3].ink), (Ink::Prompt, Ink::Prompt, Ink::Story));
        assert_eq!(c[2], Cell::BLANK);
        t.clear();
        assert!(t.cells().iter().all(|&c| c == Cell::BLANK));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: xorshift bytes in random-length pieces, tiny grids.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for cols in 1..5 {
            for rows in 1..4 {
                let mut t = text(cols, rows, (next() % 4) as usize);
                for _ in 0..200 {
                    let len = (next() % 6) as usize;
                    let piece: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    t.push(&piece, Ink::Story);
                }
                t.finish();
                assert_eq!(t.cells().len(), cols * rows);
            }
        }
    }
}
