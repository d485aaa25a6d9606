//! The C API against the CLI: `crates/capi/examples/esp_llm_run.c`, compiled with the `cc`
//! crate and linked to the C API's static library (`libesp_llm_capi.a`, built as this test's
//! dev-dependency), prints on stdout exactly what `esp-llm run` prints for the same model,
//! tokenizer, prompt, sampler settings and steps: fp32, llama2.c int8, int8 bundles in float
//! and fixed point, whole-context runs and chat.

use assert_cmd::Command;
use esp_llm_fixtures::shared;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn capi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../capi")
}

/// The static library cargo built for the dev-dependency: the newest `libesp_llm_capi*.a`
/// beside this test executable (in `deps/`) or one level up.
fn staticlib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for dir in [deps, deps.parent().unwrap()] {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("libesp_llm_capi") && name.ends_with(".a") {
                found.push((entry.metadata().unwrap().modified().unwrap(), entry.path()));
            }
        }
    }
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no libesp_llm_capi*.a in {}", deps.display()))
}

/// The host triple `cc` compiles for (the test runs on the machine it was built for).
fn host_triple() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
        "aarch64-unknown-linux-gnu"
    } else {
        panic!("c_api.rs knows only Linux hosts")
    }
}

/// Compiles `sources` (C99, all warnings as errors) and links them with the C API's static
/// library into `out/c_api/NAME`.
fn build_c(name: &str, sources: &[PathBuf]) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_api").join(name);
    std::fs::create_dir_all(&out).unwrap();
    let mut build = cc::Build::new();
    build
        .files(sources)
        .include(capi_dir().join("include"))
        .target(host_triple())
        .host(host_triple())
        .opt_level(2)
        .out_dir(&out)
        .cargo_metadata(false)
        .warnings_into_errors(true)
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-std=c99");
    let objects = build.compile_intermediates();
    let exe = out.join(name);
    // Rust's standard library needs these system libraries (rustc --print native-static-libs).
    let status = build
        .get_compiler()
        .to_command()
        .args(&objects)
        .arg(staticlib())
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s", "-o"])
        .arg(&exe)
        .status()
        .unwrap();
    assert!(status.success(), "linking the C program {name} failed");
    exe
}

/// Builds the C program once for all tests.
fn c_program() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| build_c("esp_llm_run", &[capi_dir().join("examples/esp_llm_run.c")]))
}

fn models() -> PathBuf {
    shared("models")
}

/// stdout of `esp-llm run ARGS` and of the C program with the same ARGS (stdin empty).
fn both(args: &[&str]) -> (String, String) {
    let cli = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("run")
        .args(args)
        .write_stdin("")
        .output()
        .unwrap();
    assert!(cli.status.success(), "esp-llm run {args:?}: {}", String::from_utf8_lossy(&cli.stderr));
    let c = std::process::Command::new(c_program())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(c.status.success(), "esp_llm_run {args:?}: {}", String::from_utf8_lossy(&c.stderr));
    (String::from_utf8(cli.stdout).unwrap(), String::from_utf8(c.stdout).unwrap())
}

fn assert_same(args: &[&str]) -> String {
    let (cli, c) = both(args);
    assert_eq!(c, cli, "C API vs esp-llm run {args:?}");
    cli
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn fp32_greedy_and_sampled_stories_are_the_cli_text() {
    let m = models();
    let (model, tok) = (m.join("stories260K.bin"), m.join("tok512.bin"));
    let greedy = assert_same(&[
        path(&model),
        "-z",
        path(&tok),
        "-t",
        "0",
        "-n",
        "120",
        "-i",
        "Once upon a time",
    ]);
    assert!(greedy.starts_with("Once upon a time") && greedy.len() > 200, "{greedy}");
    let sampled = assert_same(&[
        path(&model),
        "-z",
        path(&tok),
        "-t",
        "0.8",
        "-p",
        "0.95",
        "-s",
        "7",
        "-n",
        "0",
        "-i",
        "Lily and Tom",
    ]);
    assert_ne!(sampled, greedy);
    // Full distribution (top-p 1), empty prompt, the whole context.
    assert_same(&[path(&model), "-z", path(&tok), "-t", "1", "-p", "1", "-s", "42", "-n", "0"]);
}

#[test]
fn int8_checkpoint_and_bundles_in_float_and_fixed_point_are_the_cli_text() {
    let m = models();
    let tok = m.join("tok512.bin");
    assert_same(&[
        path(&m.join("stories260K_q80.bin")),
        "-z",
        path(&tok),
        "-t",
        "0.9",
        "-s",
        "3",
        "-i",
        "The cat",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("q8.ellb");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("pack")
        .arg(m.join("stories260K.bin"))
        .args(["--quant", "q8", "-o"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let float =
        assert_same(&[path(&bundle), "-t", "0.8", "-s", "11", "-n", "200", "-i", "Sam saw a dog"]);
    let fixed = assert_same(&[
        path(&bundle),
        "-t",
        "0.8",
        "-s",
        "11",
        "-n",
        "200",
        "-i",
        "Sam saw a dog",
        "--numerics",
        "fixed",
    ]);
    assert!(float.starts_with("Sam saw a dog") && fixed.starts_with("Sam saw a dog"));
}

#[test]
fn chat_is_the_cli_chat() {
    let m = models();
    let (model, tok) = (m.join("stories260K.bin"), m.join("tok512.bin"));
    let text = assert_same(&[
        path(&model),
        "-z",
        path(&tok),
        "-m",
        "chat",
        "-y",
        "You tell stories",
        "-i",
        "A story about a frog",
        "-t",
        "0.7",
        "-s",
        "5",
        "-n",
        "160",
    ]);
    assert!(text.starts_with("Assistant: "), "{text:?}");
    // No system prompt on the command line: both ask for it, read the end of stdin and stop.
    let text = assert_same(&[path(&model), "-z", path(&tok), "-m", "chat", "-t", "0", "-n", "50"]);
    assert_eq!(text, "Enter system prompt (optional): \n");
}

#[test]
fn errors_come_back_as_status_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.bin");
    let bytes = std::fs::read(models().join("stories260K.bin")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let tok = models().join("tok512.bin");
    let o = std::process::Command::new(c_program())
        .args([path(&cut), "-z", path(&tok)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("truncated") && err.contains("ESP_LLM_ERR_FORMAT"), "{err}");
    // Seed 0 would freeze llama2.c's RNG: refused with a reason.
    let model = models().join("stories260K.bin");
    let o = std::process::Command::new(c_program())
        .args([path(&model), "-z", path(&tok), "-s", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("ESP_LLM_ERR_SETTING") && err.contains("seed"),
        "{err}"
    );
    // A checkpoint without its tokenizer.
    let o = std::process::Command::new(c_program()).args([path(&model)]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ESP_LLM_ERR_TOKENIZER"), "{err}");
}

/// The C code of `crates/capi/README.md` (its first ```c block) compiles as it is documented,
/// and its `story()` prints what `esp-llm run` prints for the same bundle and settings.
#[test]
fn the_readme_c_example_is_the_cli_text() {
    let readme = std::fs::read_to_string(capi_dir().join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("a ```c block in crates/capi/README.md") + 5;
    let code = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("readme_story.c");
    std::fs::write(&example, code).unwrap();
    // A main that reads the bundle named on the command line and calls story().
    let main = dir.path().join("readme_main.c");
    std::fs::write(
        &main,
        r#"#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int story(const uint8_t *bytes, size_t len);
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 3;
    static uint8_t buf[4 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return story(buf, len);
}
"#,
    )
    .unwrap();
    let exe = build_c("readme_story", &[example, main]);

    let bundle = dir.path().join("q8.ellb");
    let o = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("pack")
        .arg(models().join("stories260K.bin"))
        .args(["--quant", "q8", "-o"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cli = Command::cargo_bin("esp-llm")
        .unwrap()
        .arg("run")
        .arg(&bundle)
        .args(["-t", "0.8", "-s", "42", "-n", "256", "-i", "Once upon a time"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let c = std::process::Command::new(&exe).arg(&bundle).output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let (cli, c) = (String::from_utf8(cli.stdout).unwrap(), String::from_utf8(c.stdout).unwrap());
    let rest = c.strip_prefix(&cli).unwrap_or_else(|| panic!("C: {c:?}\nCLI: {cli:?}"));
    let n: u32 = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(" positions]\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("after the story: {rest:?}"));
    assert!(n > 0 && n <= 256, "{n} positions");
}
