//! A corpus of hostile requests (issue 22) against ONE real `veza` process over raw sockets (no
//! client library normalises `..` or percent-escapes away): huge headers and URLs, traversal and
//! `%2F`/`..`/`%00`/invalid-UTF-8 encodings in every path parameter the OpenAPI document names
//! (as an admin and anonymously) and in `/media/`, invalid UTF-8 in queries, headers and JSON,
//! Range abuse, and audio whose header claims hours. Each case must get its 4xx (a JSON envelope
//! on `/api`), the process must stay alive with `/healthz` 200 after every case, and its resident
//! memory must stay within a stated bound over three passes. hostile.rs and hostile_media.rs
//! already cover slowloris, stalled and endless bodies, multipart bombs, connection floods and
//! playlists posing as audio; they are not repeated here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crashloop::{Server, get_json, stream_url};
use crate::helpers::{cli_admin_token, hex_sha, tone, wav};

/// RSS growth allowed from after the first pass to after the third: a leak per request would
/// show as megabytes here (each pass sends ~1,000 requests).
const RSS_GROWTH_BOUND_KIB: u64 = 8 * 1024;
/// RSS growth allowed over the whole run, warm-up pass included (buffers, caches, allocator).
const RSS_TOTAL_BOUND_KIB: u64 = 48 * 1024;

/// An answer as read off the socket.
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `raw` (a whole request, `Connection: close`) and reads the answer.
fn send_raw(addr: &str, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before reading it all (a refused header block).
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut a = Answer {
        status,
        headers: head,
        body: buf[end + 4..].to_vec(),
    };
    if a.header("transfer-encoding") == Some("chunked") {
        a.body = dechunk(&a.body);
    }
    a
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 4 + n..];
    }
    out
}

/// A request line and headers (with `Host` and `Connection: close`), then `body`.
fn request(method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method != "GET" {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// What a case must get.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// A 4xx with the JSON error envelope.
    Envelope,
    /// A 4xx (answered below the router, or outside `/api`).
    ClientError,
    /// One of these statuses.
    OneOf(&'static [u16]),
}

/// One hostile request and what it must get.
struct Case {
    name: String,
    raw: Vec<u8>,
    want: Want,
}

/// Values a path parameter should never be able to turn into a file, a route or a panic.
const HOSTILE_SEGMENTS: &[&[u8]] = &[
    b"..",
    b"%2e%2e",
    b".%2E",
    b"..%2F..%2F..%2Fetc%2Fpasswd",
    b"..%2f..%2fveza-data%2fveza.db",
    b"%2F",
    b"..%5C..%5Cveza.db",
    b"%00",
    b"abc%00.mp3",
    b"%ff%fe%fd",
    b"%C0%AE%C0%AE",
    b"\xff\xfe",
    b"-1",
    b"99999999999999999999999999",
    b"%25252e%25252e",
];

/// Secrets or server files that must never come back in a body.
const NEVER_IN_BODY: &[&[u8]] = &[b"SQLite format 3", b"root:x:0:0", b"[jobs]", b"veza-data"];

/// Every `{param}` of every operation in the OpenAPI document, with each hostile value, as an
/// admin and anonymously.
fn path_param_cases(doc: &Value, admin: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let auth = format!("Bearer {admin}");
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains('{') {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let params: Vec<&str> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for p in &params {
                for seg in HOSTILE_SEGMENTS {
                    let mut target = Vec::new();
                    for (i, s) in template.split('/').enumerate() {
                        if i > 0 {
                            target.push(b'/');
                        }
                        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(q) if q == *p => target.extend_from_slice(seg),
                            Some(_) => target.extend_from_slice(b"1"),
                            None => target.extend_from_slice(s.as_bytes()),
                        }
                    }
                    for (who, headers) in [
                        ("admin", vec![("Authorization", auth.as_bytes())]),
                        ("anonymous", vec![]),
                    ] {
                        let mut h = headers.clone();
                        h.push(("Content-Type", b"application/json"));
                        // Raw bytes over 0x7f are not HTTP: the parser refuses them (400, no body).
                        let want = if seg.is_ascii() {
                            Want::Envelope
                        } else {
                            Want::ClientError
                        };
                        out.push(Case {
                            name: format!(
                                "{method} {template} {p}={} as {who}",
                                String::from_utf8_lossy(seg)
                            ),
                            raw: request(&method, &target, &h, b"{}"),
                            want,
                        });
                    }
                }
            }
        }
    }
    out
}

/// `/media/` with traversal in place of, inside and after a real signed path.
fn media_cases(signed_path: &str) -> Vec<Case> {
    let (token_part, object) = signed_path
        .strip_prefix("/media/")
        .unwrap()
        .split_once('/')
        .unwrap();
    let mut out = Vec::new();
    let targets: Vec<String> = vec![
        "/media/../veza-data/veza.db".into(),
        "/media/%2e%2e/%2e%2e/veza-data/veza.db".into(),
        "/media/..%2F..%2Fveza-data%2Fveza.db".into(),
        format!("/media/{token_part}/../../../veza-data/veza.db"),
        format!("/media/{token_part}/{object}/../../../../veza.db"),
        format!("/media/{token_part}/{object}%2F..%2F..%2Fveza.db"),
        format!("/media/{token_part}/%2e%2e%2f%2e%2e%2fveza.toml"),
        format!("/media/{token_part}/{object}%00.txt"),
        format!("/media/{token_part}/..\\..\\veza.db"),
        format!("/media/{token_part}/originals/%ff%fe/x.mp3"),
        "/media/%2Fetc%2Fpasswd".into(),
        "/media//etc/passwd".into(),
        "/media/%252e%252e/veza.db".into(),
    ];
    for t in targets {
        out.push(Case {
            name: format!("GET {t}"),
            raw: request("GET", t.as_bytes(), &[], b""),
            want: Want::ClientError,
        });
    }
    out
}

/// Range abuse on a real original (`len` bytes): each is refused (416), ignored (200, whole) or
/// answered with exactly what was asked, never more than the file.
fn range_cases(signed_path: &str) -> Vec<Case> {
    let many: String = (0..2000)
        .map(|i| format!("{i}-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let overlapping: String = (0..500).map(|_| "0-").collect::<Vec<_>>().join(",");
    let ranges: Vec<(String, &'static [u16])> = vec![
        ("bytes=999999999999-".into(), &[416]),
        ("bytes=5-2".into(), &[200, 416]),
        ("bytes=-0".into(), &[416, 200]),
        ("bytes=abc".into(), &[200, 416]),
        ("bytes=0-18446744073709551615".into(), &[206, 200, 416]),
        ("bytes=0-99999999999999999999999".into(), &[200, 416]),
        ("bytes=--1".into(), &[200, 416]),
        ("items=0-1".into(), &[200, 416]),
        (format!("bytes={many}"), &[200, 206, 416, 431, 400]),
        (format!("bytes={overlapping}"), &[200, 206, 416, 431, 400]),
    ];
    ranges
        .into_iter()
        .map(|(r, want)| Case {
            name: format!("Range {}", &r[..r.len().min(40)]),
            raw: request(
                "GET",
                signed_path.as_bytes(),
                &[("Range", r.as_bytes())],
                b"",
            ),
            want: Want::OneOf(want),
        })
        .collect()
}

/// Oversized and malformed request heads, invalid UTF-8 in queries, headers and JSON bodies.
fn head_and_body_cases(admin: &str) -> Vec<Case> {
    let auth = format!("Bearer {admin}");
    let big = vec![b'a'; 256 * 1024];
    let many: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| (format!("X-H{i}"), b"v".to_vec()))
        .collect();
    let mut cases = vec![
        Case {
            name: "one 256 KiB header".into(),
            raw: request("GET", b"/api/v1/tracks", &[("X-Big", &big)], b""),
            want: Want::ClientError,
        },
        Case {
            name: "500 headers".into(),
            raw: request(
                "GET",
                b"/api/v1/tracks",
                &many
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect::<Vec<_>>(),
                b"",
            ),
            want: Want::ClientError,
        },
        Case {
            name: "256 KiB URL".into(),
            raw: request(
                "GET",
                &[b"/api/v1/tracks?q=".as_slice(), &big].concat(),
                &[],
                b"",
            ),
            want: Want::ClientError,
        },
        Case {
            name: "invalid UTF-8 bearer token".into(),
            raw: request(
                "GET",
                b"/api/v1/me",
                &[("Authorization", b"Bearer \xff\xfe\xfd")],
                b"",
            ),
            want: Want::Envelope,
        },
        Case {
            name: "invalid UTF-8 session cookie".into(),
            raw: request(
                "GET",
                b"/api/v1/me",
                &[("Cookie", b"veza_session=\xc0\xaf\xff")],
                b"",
            ),
            want: Want::Envelope,
        },
        Case {
            name: "invalid UTF-8 in a JSON login".into(),
            raw: request(
                "POST",
                b"/api/v1/auth/login",
                &[("Content-Type", b"application/json")],
                b"{\"username\":\"\xff\xfe\",\"password\":\"\xc3\x28aaaaaaaaaaaa\"}",
            ),
            want: Want::Envelope,
        },
        Case {
            name: "invalid UTF-8 in a JSON track edit".into(),
            raw: request(
                "PATCH",
                b"/api/v1/tracks/00000000-0000-7000-8000-000000000000",
                &[
                    ("Authorization", auth.as_bytes()),
                    ("Content-Type", b"application/json"),
                ],
                b"{\"title\":\"\xed\xa0\x80\"}",
            ),
            want: Want::Envelope,
        },
        Case {
            name: "a JSON body nested 100k deep".into(),
            raw: request(
                "POST",
                b"/api/v1/tokens",
                &[
                    ("Authorization", auth.as_bytes()),
                    ("Content-Type", b"application/json"),
                ],
                &[vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
            ),
            want: Want::Envelope,
        },
        Case {
            name: "a request line that is not HTTP".into(),
            raw: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            want: Want::ClientError,
        },
        Case {
            name: "an absurd Content-Length on an upload".into(),
            raw: [
                b"POST /api/v1/tracks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec(),
                format!("Authorization: {auth}\r\n").into_bytes(),
                b"Content-Type: multipart/form-data; boundary=b\r\n".to_vec(),
                b"Content-Length: 99999999999999\r\n\r\n--b\r\n".to_vec(),
            ]
            .concat(),
            want: Want::ClientError,
        },
    ];
    for q in [
        &b"/api/v1/tracks?q=%ff%fe"[..],
        b"/api/v1/tracks?sort=%c0%ae",
        b"/api/v1/tracks?cursor=%ff",
        b"/api/v1/tracks?limit=%ff",
        b"/api/v1/jobs?state=%ff%00",
        b"/api/v1/stats?days=%ff",
        b"/api/v1/oembed?url=http%3A%2F%2F%ff",
    ] {
        cases.push(Case {
            name: format!("query {}", String::from_utf8_lossy(q)),
            raw: request("GET", q, &[("Authorization", auth.as_bytes())], b""),
            want: Want::Envelope,
        });
    }
    cases
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Sends one case and holds its answer to the case's rule; then the server must be healthy.
/// What went wrong, if anything.
fn run_case(s: &mut Server, c: &Case) -> Result<(), String> {
    let a = send_raw(&s.addr, &c.raw);
    let api = c.name.contains("/api/") || c.name.starts_with("query ");
    let client_error = (400..500).contains(&a.status);
    let verdict = match c.want {
        Want::Envelope if !client_error => Err(format!("got {}", a.status)),
        Want::Envelope if api => match serde_json::from_slice::<Value>(&a.body) {
            Ok(v)
                if v["error"]["code"].is_string()
                    && v["error"]["message"].is_string()
                    && v["error"]["request_id"].is_string() =>
            {
                Ok(())
            }
            _ => Err(format!(
                "{} without the envelope: {:?}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )),
        },
        Want::Envelope | Want::ClientError if client_error => Ok(()),
        Want::Envelope | Want::ClientError => Err(format!("got {}", a.status)),
        Want::OneOf(ok) if ok.contains(&a.status) => Ok(()),
        Want::OneOf(ok) => Err(format!("got {}, want one of {ok:?}", a.status)),
    };
    for bad in NEVER_IN_BODY {
        assert!(
            !a.body.windows(bad.len()).any(|w| w == *bad),
            "{}: the body holds {:?}",
            c.name,
            String::from_utf8_lossy(bad)
        );
    }
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "{}: the server died",
        c.name
    );
    let h = send_raw(&s.addr, &request("GET", b"/healthz", &[], b""));
    assert_eq!(h.status, 200, "{}: /healthz after it", c.name);
    verdict.map_err(|e| format!("{}: {e}", c.name))
}

/// A 1 s WAV whose header claims ~6.7 hours of data.
fn lying_wav() -> Vec<u8> {
    wav(1000, 330.0, 7, Some(0xFFFF_0000))
}

/// A tone MP3 whose Xing/Info header claims 16 million frames (~4.9 days).
fn lying_mp3(dir: &Path) -> Vec<u8> {
    let mut b = std::fs::read(tone(dir, "lying.mp3", 2, 128)).unwrap();
    let at = b
        .windows(4)
        .position(|w| w == b"Xing" || w == b"Info")
        .expect("ffmpeg wrote an Xing/Info header");
    let flags = u32::from_be_bytes(b[at + 4..at + 8].try_into().unwrap());
    assert!(flags & 1 == 1, "the Xing header has a frame count");
    b[at + 8..at + 12].copy_from_slice(&0x00FF_FFFFu32.to_be_bytes());
    b
}

/// Uploads audio that lies about its length: refused with a 4xx at once, or stored with its
/// true duration and packaged (or failed) within a bounded time. Never hours, never a hang.
fn lying_audio(s: &Server, admin: &str, name: &str, bytes: Vec<u8>) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let sha = hex_sha(&bytes);
        let started = Instant::now();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let r = client
            .post(s.url("/api/v1/tracks"))
            .bearer_auth(admin)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(15),
            "{name}: upload took {took:?}"
        );
        let status = r.status().as_u16();
        let t: Value = r.json().await.unwrap();
        if (400..500).contains(&status) {
            assert!(t["error"]["code"].is_string(), "{name}: {t}");
            return format!("{name}: refused {status} {}", t["error"]["code"]);
        }
        assert_eq!(status, 201, "{name}: {t}");
        assert_eq!(t["sha256"], sha.as_str());
        let id = t["id"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        let t = loop {
            let t: Value = get_json(&client, &s.url(&format!("/api/v1/tracks/{id}")), admin).await;
            if t["status"] != "processing" {
                break t;
            }
            assert!(Instant::now() < deadline, "{name}: packaging hangs: {t}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ms = t["duration_ms"].as_i64();
        assert!(
            ms.is_some_and(|ms| ms < 60_000),
            "{name}: a few seconds of audio is listed as {ms:?} ms: {t}"
        );
        format!(
            "{name}: stored, {} ms, {} after {:.1?}",
            ms.unwrap(),
            t["status"],
            started.elapsed()
        )
    })
}

#[test]
fn a_corpus_of_hostile_requests_gets_4xx_and_the_server_stays_healthy() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let admin = cli_admin_token(home);
    // Anonymous limits would turn the corpus into 429s, which would prove nothing.
    std::fs::write(
        home.join("veza.toml"),
        "[stream]\nrate_limit_per_min = 1000000\n",
    )
    .unwrap();
    let mut s = Server::start(home);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let fx = tempfile::tempdir().unwrap();
    let track = rt.block_on(async {
        let file = tone(fx.path(), "a.mp3", 3, 128);
        let r = crate::helpers::upload_to(&client, &s.url(""), &admin, &file, &[]).await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let doc: Value = rt.block_on(async {
        client
            .get(s.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let original = rt.block_on(stream_url(
        &client,
        &s,
        &admin,
        &format!("/api/v1/tracks/{track}/stream?format=original"),
    ));
    let media_path = &original[original.find("/media/").unwrap()..];

    let mut corpus = path_param_cases(&doc, &admin);
    let params = corpus.len();
    corpus.extend(media_cases(media_path));
    corpus.extend(range_cases(media_path));
    corpus.extend(head_and_body_cases(&admin));
    assert!(
        params >= 15 * 2 * 10,
        "too few path parameters found: {params}"
    );

    let pid = s.child.id();
    let before = rss_kib(pid);
    run_corpus(&mut s, &corpus);
    let after_first = rss_kib(pid);
    run_corpus(&mut s, &corpus);
    run_corpus(&mut s, &corpus);
    let after = rss_kib(pid);
    let lying = [
        lying_audio(&s, &admin, "hours.wav", lying_wav()),
        lying_audio(&s, &admin, "days.mp3", lying_mp3(fx.path())),
    ];
    let end = rss_kib(pid);
    eprintln!(
        "hostile corpus: {} cases ({params} path-parameter cases) x 3 passes; RSS {before} KiB \
         before, {after_first} after pass 1, {after} after pass 3, {end} after the lying audio\n{}",
        corpus.len(),
        lying.join("\n")
    );
    assert!(
        after.saturating_sub(after_first) < RSS_GROWTH_BOUND_KIB,
        "RSS grew {} KiB over passes 2-3",
        after - after_first
    );
    assert!(
        end.saturating_sub(before) < RSS_TOTAL_BOUND_KIB,
        "RSS grew {} KiB in all",
        end - before
    );
    // The one real track is still whole after all of it.
    let body = rt.block_on(async {
        client
            .get(&original)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(
        body.len() as u64,
        std::fs::metadata(fx.path().join("a.mp3")).unwrap().len()
    );
}

/// Runs every case; fails listing every case that did not get its answer.
fn run_corpus(s: &mut Server, corpus: &[Case]) {
    let failed: Vec<String> = corpus.iter().filter_map(|c| run_case(s, c).err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases:\n{}",
        failed.len(),
        corpus.len(),
        failed.join("\n")
    );
}
