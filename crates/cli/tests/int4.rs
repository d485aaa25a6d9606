//! Int4 through the CLI: the quality stories260K keeps at q4 and mixed (bounds at the measured
//! levels, docs/bundle.md "Quality"), and `pack --fit` of a stories15M-shape model for the S3.

use assert_cmd::Command;
use esp_llm_fixtures::*;

fn esp_llm() -> Command {
    Command::cargo_bin("esp-llm").unwrap()
}

/// Packs stories260K with `args` and returns (top-1, greedy) agreement against fp32.
fn eval(dir: &std::path::Path, name: &str, args: &[&str]) -> (f64, f64) {
    let models = shared("models");
    let out = dir.join(name);
    let o = esp_llm()
        .arg("pack")
        .arg(models.join("stories260K.bin"))
        .args(args)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("precision") && text.contains("int4"), "{text}");
    let o = esp_llm()
        .arg("eval")
        .arg(models.join("stories260K.bin"))
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (v["top1_agreement"].as_f64().unwrap(), v["greedy_agreement"].as_f64().unwrap())
}

/// Measured on 2026-12-03 (docs/bundle.md): q4 g16/g32/g64 top-1 86.5/84.5/82.6%, mixed
/// (int4 embedding and classifier, int8 g32 layers) g16/g32/g64 90.6/91.4/91.4%. The bounds
/// sit a little under those so that a broken int4 kernel or quantizer fails.
#[test]
fn int4_quality_against_fp32() {
    let dir = tempfile::tempdir().unwrap();
    for (g, q4_min, mixed_min) in [("16", 0.84, 0.88), ("32", 0.82, 0.89), ("64", 0.80, 0.89)] {
        let (t, _) = eval(dir.path(), "q4.ellb", &["--quant", "q4", "--q4-group", g]);
        assert!(t >= q4_min, "q4 g{g}: top-1 {t}");
        let (t, _) =
            eval(dir.path(), "mixed.ellb", &["--quant", "mixed", "--q4-group", g, "-g", "32"]);
        assert!(t >= mixed_min, "mixed g{g}: top-1 {t}");
    }
}

#[test]
fn bad_q4_group_is_refused() {
    let models = shared("models");
    let dir = tempfile::tempdir().unwrap();
    let o = esp_llm()
        .arg("pack")
        .arg(models.join("stories260K.bin"))
        .args(["--quant", "q4", "--q4-group", "24", "-o"])
        .arg(dir.path().join("x.ellb"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("24"), "{e}");
}

/// A stories15M-shape model (random weights, the 32000-piece tokenizer) fits the S3's 12 MB
/// model partition at some int4 layout, and the plan that --fit printed runs.
#[test]
fn fit_packs_a_stories15m_shape_for_the_s3() {
    let models = shared("models");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s15.bin");
    let o =
        esp_llm().args(["synth", "--shape", "stories15M", "-q", "-o"]).arg(&src).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("s15.ellb");
    let o = esp_llm()
        .arg("pack")
        .arg(&src)
        .arg("-z")
        .arg(models.join("tokenizer.bin"))
        .args(["--fit", "esp32s3", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("fit ") && text.contains("int4"), "{text}");
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len <= 12 * 1024 * 1024, "{len}");
    let o = esp_llm().arg("plan").arg(&out).args(["--chip", "esp32s3"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
