//! The load generators run end to end on a tiny load, so they cannot rot: each starts
//! the real `rapport serve` on SQLite, drives it over gRPC, measures its baseline in a
//! scratch schema made by the migrations, prints its report and cleans up after itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `rapport` executable the bench starts: built (or found up to date) once by
/// Cargo, for the same profile as this test.
fn rapport_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bench = PathBuf::from(env!("CARGO_BIN_EXE_rapport-bench"));
        let out_dir = bench.parent().expect("the bench lives in a directory").to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "rapport", "--bin", "rapport", "--manifest-path"]);
        build.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
        if out_dir.ends_with("release") {
            build.arg("--release");
        }
        // Without the variables Cargo sets for this test: build scripts that watch
        // them (ring's watches CARGO_MANIFEST_DIR) would otherwise rebuild everything.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_tests = ["CARGO_PKG_", "CARGO_BIN_EXE_"].iter().any(|p| name.starts_with(p))
                || ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_PRIMARY_PACKAGE"]
                    .contains(&name.as_ref())
                || ["CARGO_TARGET_TMPDIR", "CARGO_BIN_NAME", "OUT_DIR"].contains(&name.as_ref());
            if set_for_tests {
                build.env_remove(name.as_ref());
            }
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "cargo build --bin rapport failed");
        let bin = out_dir.join(format!("rapport{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "no rapport executable at {}", bin.display());
        bin
    })
}

/// Runs `rapport-bench ARGS` on a fresh SQLite database in `dir`.
fn bench(dir: &Path, args: &[&str]) -> Output {
    let db = dir.join("bench.db");
    Command::new(env!("CARGO_BIN_EXE_rapport-bench"))
        .args(args)
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", db.display()))
        .env("RAPPORT_BIN", rapport_bin())
        .env_remove("RAPPORT_BENCH_SERVER")
        .env_remove("RAPPORT_BENCH_KEY")
        .output()
        .expect("running rapport-bench")
}

/// The row of the report table for concurrency `c`, as cells.
fn table_row(stdout: &str, c: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split('|').map(|cell| cell.trim().to_owned()).collect::<Vec<_>>())
        .find(|cells| cells.len() > 10 && cells[0] == c)
        .unwrap_or_else(|| panic!("no row for c={c} in:\n{stdout}"))
}

/// The files in `dir`, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn records_answers_and_its_baseline_at_two_levels_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        bench(dir.path(), &["records", "--concurrency", "1,2", "--duration-seconds", "1", "--warmup-seconds", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rapport-bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    assert!(stdout.starts_with("rapport-bench records: SQLite at sqlite://"), "{stdout}");
    for c in ["1", "2"] {
        let row = table_row(&stdout, c);
        let rate = |i: usize| row[i].parse::<f64>().unwrap_or_else(|_| panic!("column {i} of {row:?}"));
        assert!(rate(1) > 0.0, "RecordResponse answered nothing at c={c}: {row:?}");
        assert_eq!(row[4], "0", "errors at c={c}: {row:?}");
        assert!(rate(5) > 0.0, "the baseline inserted nothing at c={c}: {row:?}");
        assert!(rate(9) > 0.0, "GetSurvey answered nothing at c={c}: {row:?}");
    }
    assert!(stdout.contains("pgbench: not run: the database is not PostgreSQL"), "{stdout}");
    assert!(stdout.contains("RecordResponse at c=1 p50 ≤ 1 ms: "), "{stdout}");
    assert!(stdout.contains("no errors at any level: 0 errors: MET"), "{stdout}");
    // The scratch database of the baseline is gone; the bench database stays.
    assert!(
        files(dir.path()).iter().all(|f| f.starts_with("bench.db") && !f.contains("baseline")),
        "{:?}",
        files(dir.path())
    );
}

#[test]
fn engagement_ingests_seeds_and_reads_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        dir.path(),
        &[
            "engagement",
            "--seconds",
            "1",
            "--concurrency",
            "2",
            "--history-events",
            "300",
            "--customers",
            "40",
            "--samples",
            "2",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rapport-bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    assert!(stdout.starts_with("rapport-bench engagement on SQLite"), "{stdout}");
    assert!(!stdout.contains("ERRORS"), "{stdout}");
    let rate = |label: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"));
        line[line.find(label).unwrap() + label.len()..].split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(rate("baseline, 100-row multi-value INSERTs") > 0.0, "{stdout}");
    assert!(rate("the same with each row's dedup record") > 0.0, "{stdout}");
    assert!(rate("RecordEvents, batches of 100 ") > 0.0, "{stdout}");
    assert!(rate("RecordEvents, batches of 1000") > 0.0, "{stdout}");
    for call in
        ["GetEngagementMetrics, 30 days", "TopPropertyValues kb content_id", "floor: GetScoringConfig round trip"]
    {
        assert!(stdout.lines().any(|l| l.contains(call) && l.contains("median")), "no {call:?} latency in:\n{stdout}");
    }
    assert!(files(dir.path()).iter().all(|f| !f.contains("baseline")), "{:?}", files(dir.path()));
}
