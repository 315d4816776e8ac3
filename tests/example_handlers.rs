//! The example handlers in packaging/examples, run as the worker runs them:
//! through the exec handler, with a PATH that holds only basic tools.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{ctx, handler, run, task, temp_dir};
use taskworker::{Handler, Registry};

const LIMIT: Duration = Duration::from_secs(60);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/examples")
}

/// A directory of links to the tools the scripts use, and nothing else: no
/// sendmail, no image tools; `extra` adds links (name, tool on PATH).
fn basic_path(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let tools = [
        "sh", "awk", "dirname", "uname", "date", "mkdir", "mv", "rm", "tr", "dd", "grep", "cat",
    ];
    let links = tools.iter().map(|t| (*t, *t)).chain(extra.iter().copied());
    for (name, tool) in links {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{tool} not on PATH"));
        std::os::unix::fs::symlink(found, bin.join(name)).unwrap();
    }
    bin
}

/// The example script `name` as an exec handler with `env`.
fn script(name: &str, env: Value) -> Arc<dyn Handler> {
    let command = examples().join("handlers").join(name);
    handler(json!({"exec": {"command": [command], "env": env}}))
}

#[test]
fn the_example_config_builds_its_handlers() {
    let text = std::fs::read_to_string(examples().join("config.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    let handlers = config["handlers"].as_object().unwrap();
    // Its relative commands resolve against the config file's directory.
    let env = taskworker::HandlerEnv {
        base_dir: Some(examples()),
        ..support::handler_env(&[])
    };
    let reg = Registry::from_config(handlers, &env).unwrap();
    assert_eq!(
        reg.types(),
        ["generate.report", "process.image", "send.email"]
    );
}

#[test]
fn send_email_writes_to_the_outbox_when_there_is_no_sendmail() {
    let dir = temp_dir("send-email");
    let bin = basic_path(&dir, &[]);
    let outbox = dir.join("outbox");
    let h = script(
        "send-email",
        json!({"PATH": bin, "OUTBOX_DIR": outbox, "MAIL_FROM": "w@example.com"}),
    );
    let t = task(
        "mail/1",
        json!({"to": "a@example.com", "subject": "Hi \"there\"", "body": "Line one\nLine two"}),
    );
    let result = run(&h, &t, &ctx(), LIMIT).unwrap();
    assert_eq!(result["delivered_via"], "outbox");
    assert_eq!(result["to"], "a@example.com");
    let file = PathBuf::from(result["file"].as_str().unwrap());
    assert_eq!(file.parent().unwrap(), outbox.canonicalize().unwrap());
    let eml = std::fs::read_to_string(&file).unwrap();
    for line in [
        "From: w@example.com\r\n",
        "To: a@example.com\r\n",
        "Subject: Hi \"there\"\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
        "\r\n\r\nLine one\r\nLine two\r\n",
    ] {
        assert!(eml.contains(line), "{line:?} not in:\n{eml}");
    }
    assert!(eml.contains(&format!(
        "Message-ID: {}",
        result["message_id"].as_str().unwrap()
    )));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn send_email_hands_the_message_to_sendmail_when_there_is_one() {
    let dir = temp_dir("sendmail");
    // A stand-in sendmail that accepts everything.
    let bin = basic_path(&dir, &[("sendmail", "true")]);
    let h = script(
        "send-email",
        json!({"PATH": bin, "OUTBOX_DIR": dir.join("outbox")}),
    );
    let result = run(
        &h,
        &task("1", json!({"to": "a@example.com"})),
        &ctx(),
        LIMIT,
    )
    .unwrap();
    assert_eq!(result["delivered_via"], "sendmail");
    assert!(!dir.join("outbox").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn send_email_refuses_bad_input_permanently() {
    let dir = temp_dir("send-email-bad");
    let bin = basic_path(&dir, &[]);
    let h = script(
        "send-email",
        json!({"PATH": bin, "OUTBOX_DIR": dir.join("outbox")}),
    );
    for (params, message) in [
        (
            json!({"subject": "no recipient"}),
            "send-email: parameter \"to\" is required",
        ),
        (
            json!({"to": "a@example.com\nBcc: all@example.com"}),
            "send-email: a header parameter contains a line break",
        ),
    ] {
        let err = run(&h, &task("1", params), &ctx(), LIMIT).unwrap_err();
        assert_eq!(err.message, message);
        assert!(!err.retryable);
        assert_eq!(err.error_type, "VALIDATION", "bad input, said on stdout");
    }
    assert!(!dir.join("outbox").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn process_image_transforms_a_real_ppm() {
    let dir = temp_dir("process-image");
    let bin = basic_path(&dir, &[]);
    let input = dir.join("in.ppm");
    std::fs::write(
        &input,
        "P3\n# 2x2, red green / blue white\n2 2\n255\n255 0 0  0 255 0\n0 0 255  255 255 255\n",
    )
    .unwrap();
    let h = script("process-image", json!({"PATH": bin}));
    let result = run(&h, &task("1", json!({"path": input})), &ctx(), LIMIT).unwrap();
    assert_eq!(result["tool"], "builtin");
    assert_eq!(result["operation"], "grayscale");
    assert_eq!(
        (result["width"].clone(), result["height"].clone()),
        (json!(2), json!(2))
    );
    let gray = std::fs::read_to_string(result["file"].as_str().unwrap()).unwrap();
    assert_eq!(gray, "P2\n2 2\n255\n76 150\n29 255\n");

    let out = dir.join("flipped.ppm");
    let params = json!({"path": input, "out": out, "operation": "flip"});
    let result = run(&h, &task("2", params), &ctx(), LIMIT).unwrap();
    assert_eq!(result["file"], out.to_str().unwrap());
    let flipped = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        flipped,
        "P3\n2 2\n255\n0 0 255 255 255 255\n255 0 0 0 255 0\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn process_image_without_a_tool_for_the_format_is_retryable() {
    let dir = temp_dir("process-image-tool");
    let bin = basic_path(&dir, &[]);
    let png = dir.join("photo.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n").unwrap();
    let h = script("process-image", json!({"PATH": bin}));
    let err = run(&h, &task("1", json!({"path": png})), &ctx(), LIMIT).unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(err.message.contains("no tool for"), "{}", err.message);
    assert_eq!(err.error_type, "HANDLER");
    let err = run(
        &h,
        &task("2", json!({"path": dir.join("none.ppm")})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("cannot read"), "{}", err.message);
    assert_eq!(err.error_type, "VALIDATION");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn generate_report_renders_markdown_and_csv() {
    let dir = temp_dir("report");
    let bin = basic_path(&dir, &[]);
    let reports = dir.join("reports");
    let h = script(
        "generate-report",
        json!({"PATH": bin, "REPORT_DIR": reports}),
    );
    let params = json!({
        "title": "Sales",
        "columns": ["region", "total"],
        "rows": [{"region": "North | East", "total": 12}, {"region": "South", "total": 7.5}],
    });
    let result = run(&h, &task("rep-1", params), &ctx(), LIMIT).unwrap();
    assert_eq!(result["rows"], 2);
    assert_eq!(result["format"], "markdown");
    let path = result["path"].as_str().unwrap();
    assert!(path.ends_with("/reports/rep-1.md"), "{path}");
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "# Sales\n\n| region | total |\n| --- | --- |\n| North \\| East | 12 |\n| South | 7.5 |\n"
    );

    let params = json!({"format": "csv", "columns": ["name", "note"], "rows": [["a", "x, \"y\""], ["b", ""]]});
    let result = run(&h, &task("rep-2", params), &ctx(), LIMIT).unwrap();
    let csv = std::fs::read_to_string(result["path"].as_str().unwrap()).unwrap();
    assert_eq!(csv, "name,note\na,\"x, \"\"y\"\"\"\nb,\n");

    let err = run(
        &h,
        &task("rep-3", json!({"title": "no rows"})),
        &ctx(),
        LIMIT,
    )
    .unwrap_err();
    assert!(!err.retryable);
    assert!(err.message.contains("rows"), "{}", err.message);
    let _ = std::fs::remove_dir_all(dir);
}
