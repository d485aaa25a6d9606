//! A fresh machine: no model anywhere local, the hub replaced by a local stand-in on
//! 127.0.0.1 (HF_ENDPOINT). `esp-llm run` with no model downloads stories260K and tok512.bin
//! into HF_HOME once and writes llama2.c's story; `download` prints where files went; offline
//! runs fail in one line and leave nothing in the cache.

use assert_cmd::Command;
use esp_llm_fixtures::hub_server::{HubServer, Mode};
use esp_llm_fixtures::*;
use std::path::Path;

const TINY: [(&str, &str); 3] = [
    ("stories260K.bin", "stories260K/stories260K.bin"),
    ("tok512.bin", "stories260K/tok512.bin"),
    ("tokenizer.bin", "tokenizer.bin"),
];

/// The binary in an empty folder, with the given cache and endpoint and nothing else that
/// could point it at a model.
fn fresh(cwd: &Path, home: &Path, endpoint: &str) -> Command {
    let mut c = Command::cargo_bin("esp-llm").unwrap();
    c.current_dir(cwd)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("ESP_LLM_MODELS");
    c
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 })
        .sum()
}

#[test]
fn run_with_no_model_downloads_stories260k_once_and_writes_the_golden_story() {
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let srv = HubServer::tinyllamas(Mode::Hub, &shared("models"), &TINY);
    let gold =
        goldens().into_iter().find(|g| g.name == "once_upon_a_time.fp32.greedy.json").unwrap();
    let run = |c: &mut Command| {
        let o = c.args(["run", "-t", "0", "-n", "200", "-i", "Once upon a time"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
    };
    let (out, err) = run(&mut fresh(cwd.path(), home.path(), &srv.endpoint));
    assert_eq!(out.trim_end_matches('\n'), gold.text.as_deref().unwrap());
    assert!(err.contains("downloaded") && err.contains("stories260K.bin"), "{err}");
    let asked = srv.requests().len();
    assert!(asked >= 2, "{:?}", srv.requests());
    // Second run: from the cache, no request, no download message.
    let (out2, err2) = run(&mut fresh(cwd.path(), home.path(), &srv.endpoint));
    assert_eq!(out2, out);
    assert!(!err2.contains("download"), "{err2}");
    assert_eq!(srv.requests().len(), asked);
    // And offline.
    drop(srv);
    let (out3, _) = run(&mut fresh(cwd.path(), home.path(), "http://127.0.0.1:9"));
    assert_eq!(out3, out);
}

#[test]
fn download_prints_where_the_files_went() {
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let srv = HubServer::tinyllamas(Mode::Hub, &shared("models"), &TINY);
    let o = fresh(cwd.path(), home.path(), &srv.endpoint)
        .args(["download", "stories260K"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let paths: Vec<&str> = out.lines().collect();
    assert_eq!(paths.len(), 2, "{out}");
    assert!(
        paths[0].ends_with("stories260K/stories260K.bin")
            && paths[1].ends_with("stories260K/tok512.bin")
    );
    for (p, name) in paths.iter().zip(["stories260K.bin", "tok512.bin"]) {
        assert!(p.starts_with(home.path().to_str().unwrap()), "{p}");
        assert_eq!(std::fs::read(p).unwrap(), model_bytes(name));
    }
    // The 32000-piece tokenizer by file name, from the mirror.
    let o = fresh(cwd.path(), home.path(), &srv.endpoint)
        .args(["download", "tokenizer.bin"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = String::from_utf8(o.stdout).unwrap();
    assert_eq!(std::fs::read(p.trim()).unwrap(), model_bytes("tokenizer.bin"));
    let o = fresh(cwd.path(), home.path(), &srv.endpoint)
        .args(["download", "stories1B"])
        .output()
        .unwrap();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        !o.status.success() && err.contains("stories260K, stories15M, stories42M, stories110M"),
        "{err}"
    );
}

#[test]
fn offline_is_one_line_saying_what_to_download_and_where() {
    let (cwd, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for args in [&["run"][..], &["run", "stories15M", "-n", "4"], &["download", "stories42M"]] {
        let o = fresh(cwd.path(), home.path(), "http://127.0.0.1:9").args(args).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8(o.stderr).unwrap();
        let last = err.lines().last().unwrap();
        assert!(last.starts_with("error: cannot download "), "{args:?}: {err}");
        assert!(last.contains("http://127.0.0.1:9/karpathy/tinyllamas/resolve/main/"), "{err}");
        assert!(last.contains("./models/"), "{err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
    }
    assert_eq!(files_under(home.path()), 0, "nothing half-written in the cache");
}
