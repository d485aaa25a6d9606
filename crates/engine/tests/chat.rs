//! Chat turn by turn ([`Chat::turn`]) against the story generator: after the user's message is
//! forced, the greedy reply is what [`Generator`] chooses after the same rendered prompt (two
//! loops written differently over the same model and positions). Only greedy: run.c's chat
//! draws from the RNG at forced positions too, the generator does not.

use esp_llm_engine::chat::{self, Chat, ChatIo, TurnEnd};
use esp_llm_engine::{Checkpoint, Event, Generator, Options, Sampler, Tokenizer, Transformer};
use esp_llm_fixtures::model_bytes;

const STEPS: usize = 120;

/// The non-forced pieces the generator prints for `prompt` (BOS ends them early).
fn generated_after(model: &[u8], tok: &Tokenizer<'_>, prompt: &str) -> Vec<u8> {
    let mut t = Transformer::new(Checkpoint::parse(model).unwrap(), Options::default()).unwrap();
    let mut s = Sampler::new(t.config.vocab_size, 0.0, 0.9, 1).unwrap();
    let ids = tok.encode(prompt.as_bytes());
    let mut out = Vec::new();
    for ev in Generator::new(&mut t, tok, &mut s, ids, STEPS).unwrap() {
        if let Event::Token { forced: false, text, .. } = ev.unwrap() {
            out.extend_from_slice(text);
        }
    }
    out
}

#[test]
fn first_turn_is_the_generator_after_the_rendered_prompt() {
    let model = model_bytes("stories260K.bin");
    let tok_bytes = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok_bytes, 512).unwrap();
    for (system, user) in [(None, "Tell me a story"), (Some("Be kind"), "Lily and Tom")] {
        let expected = generated_after(&model, &tok, &chat::render(system, user));
        let mut t =
            Transformer::new(Checkpoint::parse(&model).unwrap(), Options::default()).unwrap();
        let mut s = Sampler::new(t.config.vocab_size, 0.0, 0.9, 1).unwrap();
        let mut c = Chat::new(&t, STEPS);
        let mut reply = Vec::new();
        let end = c
            .turn(&mut t, &tok, &mut s, system, user, &mut |b| {
                reply.extend_from_slice(b);
                true
            })
            .unwrap();
        // stories260K never samples EOS in these runs, so the reply runs to the last step; the
        // generator stops at a sampled BOS, after which chat goes on (run.c does the same).
        assert_eq!(end, TurnEnd::Context, "{user}");
        assert!(c.is_full());
        assert!(!expected.is_empty());
        assert!(reply.starts_with(&expected), "{user}: {reply:?} vs {expected:?}");
    }
}

#[test]
fn a_writer_that_says_stop_ends_the_turn_and_the_next_goes_on() {
    let model = model_bytes("stories260K.bin");
    let tok_bytes = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok_bytes, 512).unwrap();
    let mut t = Transformer::new(Checkpoint::parse(&model).unwrap(), Options::default()).unwrap();
    let mut s = Sampler::new(t.config.vocab_size, 0.0, 0.9, 1).unwrap();
    let mut c = Chat::new(&t, 0);
    let mut pieces = 0;
    let end = c
        .turn(&mut t, &tok, &mut s, None, "Hi", &mut |_| {
            pieces += 1;
            pieces < 3
        })
        .unwrap();
    assert_eq!((end, pieces), (TurnEnd::Stopped, 3));
    let prompt_len = tok.encode(chat::render(None, "Hi").as_bytes()).len();
    assert_eq!(c.pos(), prompt_len + 2);
    // The next turn continues at the next position with the new message forced.
    let second_len = tok.encode(chat::render(None, "Bye").as_bytes()).len();
    let end = c.turn(&mut t, &tok, &mut s, None, "Bye", &mut |_| false).unwrap();
    assert_eq!(end, TurnEnd::Stopped);
    assert_eq!(c.pos(), prompt_len + 2 + second_len);
}

/// A scripted terminal: the lines to read, and everything written.
struct Script {
    lines: Vec<String>,
    out: Vec<u8>,
}

impl ChatIo for Script {
    fn read_line(&mut self, guide: &str) -> Option<String> {
        self.out.extend_from_slice(guide.as_bytes());
        (!self.lines.is_empty()).then(|| self.lines.remove(0))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

#[test]
fn chat_loop_prints_the_turns_with_run_c_guides() {
    let model = model_bytes("stories260K.bin");
    let tok_bytes = model_bytes("tok512.bin");
    let tok = Tokenizer::from_bytes(&tok_bytes, 512).unwrap();
    let run = |steps| {
        let mut t =
            Transformer::new(Checkpoint::parse(&model).unwrap(), Options::default()).unwrap();
        let mut s = Sampler::new(512, 0.0, 0.9, 1).unwrap();
        let mut io = Script { lines: vec!["".into(), "Hello".into()], out: Vec::new() };
        chat::chat(&mut t, &tok, &mut s, None, None, steps, &mut io).unwrap();
        String::from_utf8(io.out).unwrap()
    };
    let text = run(40);
    // No system prompt given: run.c asks for one, then for the user's message.
    assert!(text.starts_with("Enter system prompt (optional): User: Assistant: "), "{text:?}");
    assert!(text.ends_with('\n'));
    // The reply is the greedy generator's after the rendered prompt.
    let expected = {
        let mut t =
            Transformer::new(Checkpoint::parse(&model).unwrap(), Options::default()).unwrap();
        let mut s = Sampler::new(512, 0.0, 0.9, 1).unwrap();
        let ids = tok.encode(chat::render(Some(""), "Hello").as_bytes());
        let mut out = Vec::new();
        for ev in Generator::new(&mut t, &tok, &mut s, ids, 40).unwrap() {
            if let Event::Token { forced: false, text, .. } = ev.unwrap() {
                out.extend_from_slice(text);
            }
        }
        String::from_utf8(out).unwrap()
    };
    let reply = text.strip_prefix("Enter system prompt (optional): User: Assistant: ").unwrap();
    assert!(reply.starts_with(&expected), "{reply:?} vs {expected:?}");
}
