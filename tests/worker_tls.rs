//! The worker talks TLS: against a TLS front of the reference server whose
//! certificate is trusted through `API_CA_FILE`, and it refuses the same
//! server when the certificate is not trusted.

#![cfg(feature = "server")]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use support::worker::{builtin_handlers, wait_for_status, WorkerSpec};
use support::{start_server, Api};
use taskworker::ServerConfig;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Terminates TLS on `127.0.0.1:0` and relays each connection to `backend`
/// in plain text. Returns the port; the listener thread lives as long as the test.
fn tls_front(backend: std::net::SocketAddr) -> u16 {
    let certs =
        vec![CertificateDer::from_pem_file(fixture("test-cert.pem")).expect("test certificate")];
    let key = PrivateKeyDer::from_pem_file(fixture("test-key.pem")).expect("test key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || relay(client, backend, config));
        }
    });
    port
}

/// One TLS connection: decrypts what the client sends to the backend, and
/// encrypts what the backend answers, until either side closes.
fn relay(client: TcpStream, backend: std::net::SocketAddr, config: Arc<rustls::ServerConfig>) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(backend) else {
        return;
    };
    let _ = client.set_read_timeout(Some(Duration::from_millis(20)));
    let _ = plain.set_read_timeout(Some(Duration::from_millis(20)));
    let mut tls = rustls::StreamOwned::new(conn, client);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if plain.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        match plain.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn works_over_tls_with_the_configured_root() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let ids: Vec<String> = (0..5)
        .map(|i| api.enqueue("echo", json!({"i": i})))
        .collect();
    let port = tls_front(server.addr());
    let url = format!("https://localhost:{port}");
    let mut worker = WorkerSpec::new("tls", &url, builtin_handlers())
        .env(
            "API_CA_FILE",
            fixture("test-cert.pem").display().to_string(),
        )
        .env("API_KEY", "tls-key-123")
        .env("WAIT_SECONDS", "1")
        .start();
    assert!(
        wait_for_status(&api, "completed", ids.len(), Duration::from_secs(60)),
        "log:\n{}",
        worker.log()
    );
    worker.stop(Duration::from_secs(15));
    assert!(
        !worker.log().contains("clear text"),
        "https: no clear-text warning"
    );
}

#[test]
fn refuses_a_server_whose_certificate_is_not_trusted() {
    let server = start_server(ServerConfig::default());
    let api = Api::new(server.url());
    let id = api.enqueue("echo", json!({}));
    let port = tls_front(server.addr());
    let url = format!("https://localhost:{port}");
    let mut worker = WorkerSpec::new("tls-untrusted", &url, builtin_handlers()).start();
    assert!(
        worker.wait_log("unreachable", Duration::from_secs(30)),
        "log:\n{}",
        worker.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        api.task(&id)["status"],
        "queued",
        "nothing claimed through an untrusted connection"
    );
    worker.stop(Duration::from_secs(15));
}
