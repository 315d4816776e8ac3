//! `serve` refuses an empty API key, whether it comes from `--api-key`,
//! `API_KEY` or a key file: an empty key would turn authentication off.

#![cfg(feature = "server")]

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{bin, start_server, temp_dir, wait_exit};
use taskworker::{Server, ServerConfig};

/// Runs `serve` with `args` and `env`; returns its exit code and stderr.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("API_KEY")
        .env_remove("API_KEY_FILE")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let code = wait_exit(&mut child, Duration::from_secs(10));
    let mut err = String::new();
    if code.is_some() {
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("stderr read");
    } else {
        let _ = child.kill();
        let _ = child.wait();
    }
    (code, err)
}

#[test]
fn serve_refuses_an_empty_key_from_flag_env_or_file() {
    let empty = temp_dir("empty-key").join("key");
    std::fs::write(&empty, "\n").expect("key file");
    let empty = empty.to_str().expect("utf-8 path");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--api-key", ""], &[], "--api-key"),
        (&[], &[("API_KEY", "")], "API_KEY"),
        (&["--api-key-file", empty], &[], "--api-key-file"),
        (&[], &[("API_KEY_FILE", empty)], "API_KEY_FILE"),
    ];
    for (args, env, name) in cases {
        let (code, err) = serve(args, env);
        assert_eq!(code, Some(78), "{args:?} {env:?}: {err}");
        assert!(err.contains(name) && err.contains("empty"), "{err}");
    }
}

#[test]
fn a_library_server_refuses_an_empty_key() {
    let err = Server::start(ServerConfig {
        api_key: Some(String::new()),
        ..ServerConfig::default()
    })
    .err()
    .expect("refused");
    assert_eq!(err.exit_code(), 78, "{err}");
    // A real key still starts.
    drop(start_server(ServerConfig {
        api_key: Some("k".into()),
        ..ServerConfig::default()
    }));
}
