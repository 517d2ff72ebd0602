//! `pulse pingpong` end to end: the real binary starts its echo processes,
//! measures all four cases and writes its report.

use std::process::Command;

#[test]
fn pingpong_measures_four_cases_across_processes() {
    let out = tempfile_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_pulse"))
        .args(["pingpong", "--count", "300", "--out"])
        .arg(&out)
        .output()
        .expect("running pulse");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pingpong.json")).expect("report"))
            .expect("json");
    let cases = report["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 4, "{report}");
    for case in cases {
        let p50 = case["p50_us"].as_f64().expect("p50");
        let p99 = case["p99_us"].as_f64().expect("p99");
        let p999 = case["p999_us"].as_f64().expect("p999");
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "{case}");
    }
    assert!(stdout.contains("sleeps   sleeps"), "{stdout}");
    assert!(stdout.contains("spins    spins"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pulse-pingpong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
