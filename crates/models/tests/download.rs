//! Downloads from a local stand-in for the hub (127.0.0.1, no network): the cache layout, the
//! reuse of cached files, and every failure leaving nothing in the cache.

use esp_llm_fixtures::hub_server::{Fault, HubServer, Mode, COMMIT};
use esp_llm_models::{cached, fetch, model, TOKENIZER_32000};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The environment is per process: one test at a time sets HF_HOME and HF_ENDPOINT.
static ENV: Mutex<()> = Mutex::new(());

fn with_env<T>(home: &Path, endpoint: &str, f: impl FnOnce() -> T) -> T {
    let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the lock above keeps the other tests of this binary from reading or writing the
    // environment meanwhile, and nothing else in this process touches it.
    unsafe {
        std::env::set_var("HF_HOME", home);
        std::env::set_var("HF_ENDPOINT", endpoint);
        std::env::remove_var("HF_HUB_CACHE");
        std::env::remove_var("HF_TOKEN");
        std::env::remove_var("ESP_LLM_TOKENIZER_URL");
    }
    f()
}

fn models() -> PathBuf {
    esp_llm_fixtures::models_dir().to_path_buf()
}

const TINY: [(&str, &str); 3] = [
    ("stories260K.bin", "stories260K/stories260K.bin"),
    ("tok512.bin", "stories260K/tok512.bin"),
    ("tokenizer.bin", "tokenizer.bin"),
];

/// Every file under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn downloads_into_the_hub_cache_layout_once() {
    let home = tempfile::tempdir().unwrap();
    let srv = HubServer::tinyllamas(Mode::Hub, &models(), &TINY);
    let m = model("stories260K").unwrap();
    with_env(home.path(), &srv.endpoint, || {
        assert_eq!(cached(&m.checkpoint), None);
        let ck = fetch(&m.checkpoint, false).unwrap();
        let tok = fetch(&m.tokenizer, false).unwrap();
        let repo = home.path().join("hub/models--karpathy--tinyllamas");
        assert_eq!(ck, repo.join(format!("snapshots/{COMMIT}/stories260K/stories260K.bin")));
        assert_eq!(tok, repo.join(format!("snapshots/{COMMIT}/stories260K/tok512.bin")));
        assert_eq!(
            std::fs::read(&ck).unwrap(),
            std::fs::read(models().join("stories260K.bin")).unwrap()
        );
        assert_eq!(
            std::fs::read(&tok).unwrap(),
            std::fs::read(models().join("tok512.bin")).unwrap()
        );
        assert!(std::fs::symlink_metadata(&ck).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
        // Blobs are named by the ETag, the SHA-256 of the contents; nothing else is left.
        let t = tree(&repo.join("blobs"));
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t.iter().all(|b| b.len() == 64), "{t:?}");
        let asked = srv.requests().len();
        assert_eq!(fetch(&m.checkpoint, false).unwrap(), ck);
        assert_eq!(srv.requests().len(), asked, "a cached file is not downloaded again");
    });
    drop(srv);
    // Offline now: the cache still answers.
    with_env(home.path(), "http://127.0.0.1:9", || {
        assert!(cached(&m.checkpoint).is_some());
        assert!(fetch(&m.tokenizer, false).is_ok());
    });
}

#[test]
fn a_plain_static_mirror_works_too() {
    let home = tempfile::tempdir().unwrap();
    let srv = HubServer::tinyllamas(Mode::Plain, &models(), &TINY);
    with_env(home.path(), &srv.endpoint, || {
        let p = fetch(&model("stories260K").unwrap().tokenizer, false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(models().join("tok512.bin")).unwrap());
        assert!(p.ends_with("snapshots/main/stories260K/tok512.bin"), "{}", p.display());
        // The 32000-piece tokenizer from the mirror, checked against its pinned SHA-256.
        let p = fetch(&TOKENIZER_32000, false).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(models().join("tokenizer.bin")).unwrap()
        );
        assert_eq!(cached(&TOKENIZER_32000), Some(p));
    });
}

/// Runs a failing download and returns its message; the cache must hold no file afterwards.
fn failure(mode: Mode, fault: Option<Fault>, endpoint: Option<&str>) -> String {
    let home = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(models().join("stories260K.bin")).unwrap();
    let srv = HubServer::start(
        mode,
        vec![("karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin".into(), bytes, fault)],
    );
    let ck = model("stories260K").unwrap().checkpoint;
    let msg = with_env(home.path(), endpoint.unwrap_or(&srv.endpoint), || {
        let e = fetch(&ck, false).unwrap_err().to_string();
        assert_eq!(cached(&ck), None);
        e
    });
    eprintln!("{msg}");
    let left = tree(home.path());
    assert!(left.is_empty(), "{msg}: left in the cache: {left:?}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.contains("stories260K/stories260K.bin") && msg.contains("./models/"), "{msg}");
    msg
}

#[test]
fn failures_say_what_to_download_and_leave_nothing() {
    let m = failure(Mode::Hub, Some(Fault::CutAfter(100_000)), None);
    assert!(m.contains("cut short") || m.contains("connection broken"), "{m}");
    let m = failure(Mode::Plain, Some(Fault::CutAfter(0)), None);
    assert!(
        m.contains("cut short") || m.contains("connection broken") || m.contains("empty"),
        "{m}"
    );
    let m = failure(Mode::Hub, Some(Fault::Corrupt), None);
    assert!(m.contains("SHA-256"), "{m}");
    let m = failure(Mode::Hub, Some(Fault::Status(500)), None);
    assert!(m.contains("HTTP 500"), "{m}");
    let m = failure(Mode::Hub, Some(Fault::Status(404)), None);
    assert!(m.contains("404"), "{m}");
    // Nothing listening (port 9, discard, is closed on loopback here): offline.
    let m = failure(Mode::Hub, None, Some("http://127.0.0.1:9"));
    assert!(m.contains("offline") || m.contains("onnect"), "{m}");
}

#[test]
fn a_tokenizer_with_the_wrong_checksum_is_refused() {
    let home = tempfile::tempdir().unwrap();
    // Served where the tokenizer should be: another file.
    let other = std::fs::read(models().join("tok512.bin")).unwrap();
    let srv = HubServer::start(Mode::Plain, vec![("llama2.c/tokenizer.bin".into(), other, None)]);
    let msg = with_env(home.path(), "http://127.0.0.1:9", || {
        // SAFETY: under the environment lock taken by with_env's caller scope below.
        unsafe {
            std::env::set_var(
                "ESP_LLM_TOKENIZER_URL",
                format!("{}/llama2.c/tokenizer.bin", srv.endpoint),
            )
        };
        let e = fetch(&TOKENIZER_32000, false).unwrap_err().to_string();
        unsafe { std::env::remove_var("ESP_LLM_TOKENIZER_URL") };
        e
    });
    assert!(msg.contains("SHA-256") && msg.contains("50a52ef8"), "{msg}");
    assert!(tree(home.path()).is_empty(), "{:?}", tree(home.path()));
}
