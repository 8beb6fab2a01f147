//! `byline model add|list` and `--model NAME`: any GGUF registered by name
//! with its sha256, architecture and chat template from the file's metadata;
//! a corrupt file is refused with a clear error and registers nothing.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::model::default_model;
use crate::support::{byline_bin, tempdir};

fn run(data: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(byline_bin())
        .env("BYLINE_DATA_DIR", data)
        .env_remove("BYLINE_MODEL")
        .args(args)
        .output()
        .unwrap()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_registered_gguf_is_usable_by_name_and_a_corrupt_one_is_refused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let model = default_model();
    let out = run(
        &data,
        &[
            os("model"),
            os("add"),
            model.as_os_str(),
            os("--name"),
            os("smol"),
            os("--json"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["name"], "smol");
    assert_eq!(
        e["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(e["architecture"], "llama");
    assert_eq!(e["supported"], true);
    assert_eq!(e["chat_template"], true);
    assert_eq!(e["chat_template_sha256"].as_str().map(str::len), Some(64));
    assert!(data.join("models.json").is_file());

    // By name, for a command that needs no corpus.
    let out = run(
        &data,
        &[
            os("generate"),
            os("--model"),
            os("smol"),
            os("--temp"),
            os("0"),
            os("-n"),
            os("3"),
            os("--prompt"),
            os("The river"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Corrupt files: a truncated GGUF and bytes that are no GGUF at all.
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"this is not a model at all, just some text\n").unwrap();
    for bad in [&truncated, &junk] {
        let out = run(
            &data,
            &[
                os("model"),
                os("add"),
                bad.as_os_str(),
                os("--name"),
                os("bad"),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains("is not a usable GGUF file"),
            "{}",
            text(&out)
        );
    }
    // The name is taken by another file.
    let copy = dir.path().join("copy.gguf");
    std::fs::copy(&model, &copy).unwrap();
    let out = run(
        &data,
        &[
            os("model"),
            os("add"),
            copy.as_os_str(),
            os("--name"),
            os("smol"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already registered"), "{}", text(&out));

    let out = run(&data, &[os("model"), os("list"), os("--json")]);
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["smol"], "nothing corrupt was registered: {list}");
    assert_eq!(list[0]["present"], true);
    let human = run(&data, &[os("model"), os("list")]);
    assert!(text(&human).starts_with("smol "), "{}", text(&human));

    let out = run(
        &data,
        &[
            os("generate"),
            os("--model"),
            os("nosuch"),
            os("-n"),
            os("1"),
            os("--prompt"),
            os("x"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no model registered"), "{}", text(&out));
}
