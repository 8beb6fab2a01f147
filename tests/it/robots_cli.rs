//! `byline robots check` run as a real process.

use std::process::Command;

use serde_json::Value;

use crate::support::{byline_bin, tempdir};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(byline_bin())
        .args(args)
        .output()
        .expect("running byline")
}

#[test]
fn robots_check_prints_one_json_line_per_url() {
    let dir = tempdir();
    let file = dir.path().join("robots.txt");
    std::fs::write(
        &file,
        "User-agent: *\nDisallow: /\n\n# ours\nUser-agent: BylineBot/1.0\nDisallow: /private\nAllow: /private/ok\n",
    )
    .unwrap();
    let out = run(&[
        "robots",
        "check",
        "--robots",
        file.to_str().unwrap(),
        "/private/x",
        "https://example.org/private/ok/1?q=2#frag",
        "/public",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        serde_json::json!({"url": "/private/x", "allowed": false, "matched_line": 6, "rule": "Disallow: /private"})
    );
    assert_eq!(lines[1]["allowed"], true);
    assert_eq!(lines[1]["matched_line"], 7);
    assert_eq!(lines[1]["url"], "https://example.org/private/ok/1?q=2#frag");
    assert_eq!(
        lines[2],
        serde_json::json!({"url": "/public", "allowed": true, "matched_line": null, "rule": null})
    );

    // Another agent falls back to the `*` group.
    let out = run(&[
        "robots",
        "check",
        "--robots",
        file.to_str().unwrap(),
        "--agent",
        "otherbot",
        "/public",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["matched_line"], 2);
}

#[test]
fn robots_check_reports_a_missing_file_and_a_bad_url_clearly() {
    let out = run(&[
        "robots",
        "check",
        "--robots",
        "/nonexistent/robots.txt",
        "/a",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/robots.txt"), "{err}");

    let dir = tempdir();
    let file = dir.path().join("robots.txt");
    std::fs::write(&file, "User-agent: *\nDisallow: /\n").unwrap();
    let out = run(&[
        "robots",
        "check",
        "--robots",
        file.to_str().unwrap(),
        "/a",
        "http://[::1",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing printed before the error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://[::1"));
}

#[test]
fn robots_check_warns_about_truncation_on_stderr() {
    let dir = tempdir();
    let file = dir.path().join("robots.txt");
    let mut body = b"User-agent: *\n".to_vec();
    while body.len() < 600_000 {
        body.extend_from_slice(b"# filler filler filler filler filler filler filler\n");
    }
    body.extend_from_slice(b"Disallow: /late\n");
    std::fs::write(&file, &body).unwrap();
    let out = run(&[
        "robots",
        "check",
        "--robots",
        file.to_str().unwrap(),
        "/late",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allowed"], true);
    assert!(String::from_utf8_lossy(&out.stderr).contains("robots.truncated"));
}

#[test]
fn robots_help_explains_the_check_command() {
    let out = run(&["robots", "check", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--robots", "--agent", "matched_line", "BylineBot"] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }
}
