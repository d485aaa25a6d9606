//! Every bad input at the C boundary is a returned status with a message, never a crash: NULL
//! pointers in every position, option values C can pass that Rust enums could not hold, model
//! bytes cut or corrupted anywhere in their header and directory, non-UTF-8 strings, and the
//! message buffer always NUL-terminated within its size.

use esp_llm_capi::*;
use esp_llm_fixtures::model_bytes;
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn blank_error() -> esp_llm_error {
    esp_llm_error {
        status: esp_llm_status::ESP_LLM_OK,
        message: [b'x' as _; ESP_LLM_ERROR_MESSAGE_LEN],
    }
}

/// The message, checked to be NUL-terminated inside the buffer and UTF-8.
fn message(e: &esp_llm_error) -> String {
    let bytes: Vec<u8> = e.message.iter().map(|&c| c as u8).collect();
    let nul = bytes.iter().position(|&b| b == 0).expect("message is NUL-terminated in its buffer");
    String::from_utf8(bytes[..nul].to_vec()).expect("message is UTF-8")
}

/// A q8 bundle of stories260K, packed by the engine as `esp-llm pack --quant q8` does.
fn bundle() -> Vec<u8> {
    use esp_llm_engine::checkpoint::bundle::{pack, Quant};
    let model = model_bytes("stories260K.bin");
    let ck = esp_llm_engine::Checkpoint::parse(&model).unwrap();
    pack(&ck, &model_bytes("tok512.bin"), Quant::Q8(None), &mut |_| {}).unwrap().0
}

fn open(
    bytes: &[u8],
    options: Option<&esp_llm_options>,
) -> (esp_llm_status, *mut esp_llm_model, String) {
    let mut e = blank_error();
    let mut m = null_mut();
    let opts = options.map_or(null(), |o| o as *const _);
    // SAFETY: valid buffers and pointers.
    let s = unsafe { esp_llm_open(bytes.as_ptr(), bytes.len(), opts, &mut m, &mut e) };
    assert_eq!(s, e.status);
    (s, m, message(&e))
}

#[test]
fn null_pointers_are_argument_errors() {
    let mut e = blank_error();
    let mut m = null_mut();
    // SAFETY (whole test): the pointers are NULL or valid.
    unsafe {
        assert_eq!(
            esp_llm_open(null(), 10, null(), &mut m, &mut e),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        assert!(m.is_null() && message(&e).contains("NULL"), "{}", message(&e));
        let b = bundle();
        assert_eq!(
            esp_llm_open(b.as_ptr(), b.len(), null(), null_mut(), &mut e),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        // No error struct: the status alone.
        assert_eq!(
            esp_llm_open(null(), 0, null(), &mut m, null_mut()),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        assert_eq!(
            esp_llm_memory(null(), 0, null(), null_mut(), &mut e),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        assert_eq!(
            esp_llm_bundle_length(null(), 128, 0, null_mut(), &mut e),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        let calls: [(&str, esp_llm_status); 5] = [
            ("info", esp_llm_model_info(null_mut(), null_mut(), &mut e)),
            ("sampler", esp_llm_set_sampler(null_mut(), null(), &mut e)),
            (
                "generate",
                esp_llm_generate(null_mut(), null(), 0, None, null_mut(), null_mut(), &mut e),
            ),
            ("reset", esp_llm_chat_reset(null_mut(), 0, &mut e)),
            (
                "turn",
                esp_llm_chat_turn(null_mut(), null(), null(), None, null_mut(), null_mut(), &mut e),
            ),
        ];
        for (what, s) in calls {
            assert_eq!(s, esp_llm_status::ESP_LLM_ERR_ARGUMENT, "{what}");
        }
        esp_llm_close(null_mut());

        // A live model, NULL everywhere else.
        let (s, m, msg) = open(&b, None);
        assert_eq!(s, esp_llm_status::ESP_LLM_OK, "{msg}");
        assert_eq!(esp_llm_model_info(m, null_mut(), &mut e), esp_llm_status::ESP_LLM_ERR_ARGUMENT);
        assert_eq!(esp_llm_set_sampler(m, null(), &mut e), esp_llm_status::ESP_LLM_ERR_ARGUMENT);
        assert_eq!(
            esp_llm_chat_turn(m, null(), null(), None, null_mut(), null_mut(), &mut e),
            esp_llm_status::ESP_LLM_ERR_ARGUMENT
        );
        assert!(message(&e).contains("user message is NULL"), "{}", message(&e));
        // NULL prompt = empty, NULL callback = discard: a story runs.
        let mut r = std::mem::zeroed::<esp_llm_result>();
        assert_eq!(
            esp_llm_generate(m, null(), 20, None, null_mut(), &mut r, &mut e),
            esp_llm_status::ESP_LLM_OK
        );
        assert_eq!(
            (r.positions, r.prompt_tokens, r.stop),
            (20, 1, esp_llm_stop::ESP_LLM_STOP_STEPS)
        );
        esp_llm_close(m);
    }
}

#[test]
fn option_values_from_c_are_checked() {
    let b = bundle();
    let mut o = esp_llm_options_default();
    o.numerics = 3;
    let (s, m, msg) = open(&b, Some(&o));
    assert!(
        s == esp_llm_status::ESP_LLM_ERR_ARGUMENT && m.is_null() && msg.contains("numerics"),
        "{msg}"
    );
    // Fixed point on an fp32 model: unsupported, with the way out.
    let fp32 = model_bytes("stories260K.bin");
    let tok = model_bytes("tok512.bin");
    let mut o = esp_llm_options_default();
    o.numerics = esp_llm_numerics::ESP_LLM_NUMERICS_FIXED as u32;
    (o.tokenizer, o.tokenizer_len) = (tok.as_ptr(), tok.len());
    let (s, _, msg) = open(&fp32, Some(&o));
    assert!(s == esp_llm_status::ESP_LLM_ERR_UNSUPPORTED && msg.contains("int8"), "{msg}");
    // A tokenizer of the wrong vocabulary.
    let mut o = esp_llm_options_default();
    (o.tokenizer, o.tokenizer_len) = (tok.as_ptr(), tok.len() / 2);
    let (s, _, msg) = open(&fp32, Some(&o));
    assert_eq!(s, esp_llm_status::ESP_LLM_ERR_TOKENIZER, "{msg}");

    let (s, m, msg) = open(&b, None);
    assert_eq!(s, esp_llm_status::ESP_LLM_OK, "{msg}");
    let mut e = blank_error();
    for (t, p, seed, what) in [
        (-1.0, 0.9, 1, "temperature"),
        (f32::NAN, 0.9, 1, "temperature"),
        (1.0, 1.5, 1, "top-p"),
        (1.0, 0.9, 0, "seed"),
    ] {
        let so = esp_llm_sampler_options { temperature: t, topp: p, seed };
        // SAFETY: a live model and valid pointers.
        let s = unsafe { esp_llm_set_sampler(m, &so, &mut e) };
        assert_eq!(s, esp_llm_status::ESP_LLM_ERR_SETTING, "{what}");
        assert!(message(&e).contains(what), "{what}: {}", message(&e));
    }
    // Non-UTF-8 chat text, and a prompt longer than a shortened context.
    let bad = c"caf\xe9";
    // SAFETY: a live model, NUL-terminated strings.
    unsafe {
        let s = esp_llm_chat_turn(m, null(), bad.as_ptr(), None, null_mut(), null_mut(), &mut e);
        assert!(
            s == esp_llm_status::ESP_LLM_ERR_ARGUMENT && message(&e).contains("UTF-8"),
            "{}",
            message(&e)
        );
        esp_llm_close(m);
    }
    let mut o = esp_llm_options_default();
    o.seq_len = 4;
    let (s, m, msg) = open(&b, Some(&o));
    assert_eq!(s, esp_llm_status::ESP_LLM_OK, "{msg}");
    // SAFETY: as above.
    unsafe {
        let s = esp_llm_generate(
            m,
            c"Once upon a time there was".as_ptr(),
            0,
            None,
            null_mut(),
            null_mut(),
            &mut e,
        );
        assert_eq!(s, esp_llm_status::ESP_LLM_ERR_PROMPT_TOO_LONG, "{}", message(&e));
        esp_llm_close(m);
    }
}

#[test]
fn cut_or_corrupted_model_bytes_are_errors() {
    let b = bundle();
    let mut o = esp_llm_options_default();
    // Every cut through the header, directory and tokenizer, and a spread of cuts after.
    let head = 128 + 47 * 48 + 2048;
    let cuts = (0..head).chain((head..b.len()).step_by(997));
    for cut in cuts {
        for verify in [true, false] {
            o.verify_checksum = verify;
            let (s, m, msg) = open(&b[..cut], Some(&o));
            assert!(s != esp_llm_status::ESP_LLM_OK && m.is_null(), "cut at {cut}: {s:?}");
            assert!(!msg.is_empty(), "cut at {cut}: empty message");
        }
    }
    // Every single-byte change in the header and directory: the checksum or the parser says so.
    let mut bad = b.clone();
    o.verify_checksum = true;
    for i in (0..128 + 47 * 48).step_by(3) {
        bad[i] ^= 0x5A;
        let (s, m, msg) = open(&bad, Some(&o));
        assert!(s != esp_llm_status::ESP_LLM_OK && m.is_null(), "byte {i}: {s:?}");
        assert!(!msg.is_empty());
        bad[i] = b[i];
    }
    // Erased flash, as a never-written partition reads.
    let erased = vec![0xFFu8; 4096];
    let mut e = blank_error();
    let mut len = 0;
    // SAFETY: valid buffers.
    let s = unsafe { esp_llm_bundle_length(erased.as_ptr(), 128, erased.len(), &mut len, &mut e) };
    assert!(
        s == esp_llm_status::ESP_LLM_ERR_FORMAT && message(&e).contains("erased"),
        "{}",
        message(&e)
    );
    // A partition smaller than the bundle its header announces.
    // SAFETY: valid buffers.
    let s = unsafe { esp_llm_bundle_length(b.as_ptr(), 128, b.len() - 1, &mut len, &mut e) };
    assert!(
        s == esp_llm_status::ESP_LLM_ERR_FORMAT && message(&e).contains("partition holds"),
        "{}",
        message(&e)
    );
    // SAFETY: valid buffers.
    let s = unsafe { esp_llm_bundle_length(b.as_ptr(), 128, b.len() + 4096, &mut len, &mut e) };
    assert_eq!((s, len), (esp_llm_status::ESP_LLM_OK, b.len()), "{}", message(&e));
}

/// The sketch's flow: the header's bundle length out of the first 128 bytes of a partition, and
/// a whole partition (the bundle, then erased flash) opened as it is.
#[test]
fn a_whole_partition_opens_and_its_header_gives_the_bundle_length() {
    let b = bundle();
    let mut partition = b.clone();
    partition.resize(3 << 20, 0xFF);
    let (mut e, mut len) = (blank_error(), 0);
    // SAFETY: valid buffers.
    let s = unsafe {
        esp_llm_bundle_length(partition.as_ptr(), 128, partition.len(), &mut len, &mut e)
    };
    assert_eq!((s, len), (esp_llm_status::ESP_LLM_OK, b.len()), "{}", message(&e));
    for bytes in [&partition[..], &partition[..len]] {
        let (s, m, msg) = open(bytes, None);
        assert_eq!(s, esp_llm_status::ESP_LLM_OK, "{msg}");
        // SAFETY: a model from esp_llm_open.
        unsafe { esp_llm_close(m) };
    }
}

#[test]
fn status_names_cover_every_value() {
    for (v, name) in [
        (0, "ESP_LLM_OK"),
        (2, "ESP_LLM_ERR_FORMAT"),
        (9, "ESP_LLM_ERR_PANIC"),
        (10, "ESP_LLM_UNKNOWN_STATUS"),
        (-1, "ESP_LLM_UNKNOWN_STATUS"),
    ] {
        // SAFETY: a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(esp_llm_status_name(v)) }.to_str().unwrap(), name);
    }
    // SAFETY: as above.
    assert_eq!(
        unsafe { CStr::from_ptr(esp_llm_version()) }.to_str().unwrap(),
        env!("CARGO_PKG_VERSION")
    );
}
