//! SIGTERM lets an in-flight request finish, then the process exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::veza;

#[test]
fn sigterm_during_a_slow_request_still_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = veza(dir.path())
        .env("VEZA_SERVER__LISTEN", "127.0.0.1:0")
        .env("VEZA_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The start-up line carries the bound address.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('"').next().unwrap().trim().to_owned();
        }
    };
    // Drain stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let body = br#"{"name":"LCP","value":1200,"route":"/slow"}"#;
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /api/v1/observability/web-vitals HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(500));
    // Still in flight: the rest of the body arrives after the signal.
    s.write_all(&body[10..]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut resp = String::new();
    let mut buf = [0u8; 1024];
    while !resp.contains("\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before a response: {resp:?}");
        resp.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(resp.starts_with("HTTP/1.1 204"), "{resp}");
    drop(s);

    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
