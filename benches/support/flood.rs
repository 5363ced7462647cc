//! Listener flood (issue 22): the real `veza` binary on loopback with a few packaged tracks, and
//! N simulated players for S seconds, each asking for a stream URL and pulling the master
//! playlist, a media playlist, the init segment and every segment back to back, then starting
//! over. Reports req/s, latency percentiles, errors, and the server's RSS and CPU. With `edge`,
//! the players go through a loopback caching edge that does what a Bunny pull zone does (checks
//! the path-form token, caches by object path, coalesces concurrent misses, pulls with the origin
//! secret) and the report counts the origin pulls per object. Shared by `benches/flood.rs` (the
//! full run) and the CI smoke test in tests/it/flood.rs.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::OnceCell;
use warp::Filter;

const SECURITY_KEY: &str = "flood-bench-bunny-security-key";
const ORIGIN_SECRET: &str = "flood-bench-origin-secret-0123456789";

/// What to run.
pub struct Opts {
    /// The `veza` binary.
    pub veza: PathBuf,
    /// Concurrent players.
    pub players: usize,
    /// How long they play.
    pub secs: u64,
    /// Packaged tracks they choose from.
    pub tracks: usize,
    /// Length of each track (seconds of audio).
    pub track_secs: u32,
    /// Through the loopback caching edge.
    pub edge: bool,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub requests: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes: u64,
    pub rss_idle_kib: u64,
    pub rss_peak_kib: u64,
    pub cpu_secs: f64,
    /// Requests per kind: stream URL, playlist, segment.
    pub issued: u64,
    pub playlists: u64,
    pub segments: u64,
    /// Through the edge: distinct objects pulled from the origin, total pulls, most pulls of one.
    pub edge_objects: usize,
    pub edge_pulls: u64,
    pub edge_max_pulls: u64,
    /// `/media/` requests the origin counted in its own metrics.
    pub origin_media_requests: u64,
}

impl Report {
    /// Requests per second over the run.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }

    /// Server CPU as a share of one core.
    pub fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu_secs / self.secs
    }

    /// A printable table.
    pub fn table(&self, o: &Opts) -> String {
        let mut t = format!(
            "| players | secs | via | requests | req/s | p50 ms | p99 ms | max ms | errors | MB/s | RSS idle→peak MiB | CPU (1 core = 100 %) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {:.0} | {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {:.1} | {:.1} → {:.1} | {:.0} % |\n\
             requests: {} stream URLs, {} playlists, {} segments",
            o.players,
            self.secs,
            if o.edge { "edge" } else { "origin" },
            self.requests,
            self.rps(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.bytes as f64 / self.secs / 1e6,
            self.rss_idle_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0,
            self.cpu_pct(),
            self.issued,
            self.playlists,
            self.segments,
        );
        if o.edge {
            t += &format!(
                "\nthrough the edge: {} objects, {} origin pulls ({:.2} per object, at most {} \
                 for one); the origin's metrics count {} /media/ requests",
                self.edge_objects,
                self.edge_pulls,
                self.edge_pulls as f64 / self.edge_objects.max(1) as f64,
                self.edge_max_pulls,
                self.origin_media_requests
            );
        }
        for e in &self.error_samples {
            t += &format!("\nerror: {e}");
        }
        t
    }
}

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(o: &Opts, home: &Path) -> Command {
    let mut c = Command::new(&o.veza);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("VEZA_LOG__LEVEL", "warn")
        .current_dir(home);
    c
}

fn ok(c: &mut Command, stdin: Option<&str>) -> String {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running veza");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        pipe.write_all(s.as_bytes()).unwrap();
    }
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory and CPU seconds (user + system) of a process.
fn usage(pid: u32, tick: f64) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = rest
        .get(11..13)
        .map(|v| v.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    (rss, ticks / tick)
}

fn clock_tick() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

type Cached = (u16, Vec<(String, Vec<u8>)>, Bytes);

/// The caching edge: one origin pull per object path, concurrent misses wait for it.
#[derive(Default)]
struct Edge {
    cache: Mutex<HashMap<String, Arc<OnceCell<Cached>>>>,
    pulls: Mutex<HashMap<String, u64>>,
}

async fn spawn_edge(edge: Arc<Edge>, origin: String) -> SocketAddr {
    let client = reqwest::Client::new();
    let route = warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |full: warp::path::FullPath, query: String| {
            let (client, edge, origin) = (client.clone(), edge.clone(), origin.clone());
            async move {
                let path = full.as_str();
                let target = if query.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{query}")
                };
                let mut resp = warp::http::Response::builder();
                let now = veza::clock::now() as u64;
                if veza::signing::bunny::verify(&target, SECURITY_KEY, now, None).is_err() {
                    return resp
                        .status(403)
                        .body(Bytes::from_static(b"edge: 403"))
                        .unwrap();
                }
                // Path form: the first segment is the token; the cache key is the object path.
                let wire = match path.strip_prefix("/bcdn_token=") {
                    Some(rest) => rest[rest.find('/').unwrap_or(0)..].to_owned(),
                    None => path.to_owned(),
                };
                let cell = edge
                    .cache
                    .lock()
                    .unwrap()
                    .entry(wire.clone())
                    .or_default()
                    .clone();
                let (status, headers, body) = cell
                    .get_or_init(|| async {
                        *edge.pulls.lock().unwrap().entry(wire.clone()).or_default() += 1;
                        match client
                            .get(format!("{origin}/media{wire}"))
                            .header(veza::http::media::ORIGIN_SECRET_HEADER, ORIGIN_SECRET)
                            .send()
                            .await
                        {
                            Ok(got) => {
                                let status = got.status().as_u16();
                                let headers = got
                                    .headers()
                                    .iter()
                                    .filter(|(k, _)| {
                                        !matches!(
                                            k.as_str(),
                                            "content-length" | "transfer-encoding" | "connection"
                                        )
                                    })
                                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                                    .collect();
                                let body = got.bytes().await.unwrap_or_default();
                                (status, headers, body)
                            }
                            Err(e) => (502, Vec::new(), Bytes::from(format!("edge: {e}"))),
                        }
                    })
                    .await
                    .clone();
                resp = resp.status(status);
                for (k, v) in headers {
                    resp = resp.header(k, v);
                }
                resp.body(body).unwrap()
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    addr
}

/// Sets up a data dir with `o.tracks` packaged tracks, serves it, floods it; the figures.
pub async fn run(o: &Opts) -> Report {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    ok(cli(o, home).arg("migrate"), None);
    ok(
        cli(o, home).args(["admin", "create", "--username", "bench", "--password-stdin"]),
        Some("bench-password-123\n"),
    );
    let token = ok(
        cli(o, home).args(["token", "create", "--username", "bench", "--name", "flood"]),
        None,
    );
    let edge = Arc::new(Edge::default());
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut serve = cli(o, home);
    serve
        .env("VEZA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VEZA_SERVER__PUBLIC_URL", &origin)
        .env("VEZA_SERVER__MAX_CONNECTIONS", "8192")
        // A one-machine flood comes from one address: lift the per-IP issuance limit.
        .env("VEZA_STREAM__RATE_LIMIT_PER_MIN", "1000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("veza.err")).unwrap());
    if o.edge {
        let addr = spawn_edge(edge.clone(), origin.clone()).await;
        serve
            .env("VEZA_CDN__ENABLED", "true")
            .env("VEZA_CDN__PROVIDER", "bunny")
            .env("VEZA_CDN__BASE_URL", format!("http://{addr}"))
            .env("VEZA_CDN__SECURITY_KEY", SECURITY_KEY)
            .env("VEZA_CDN__BUNNY__ORIGIN_SECRET", ORIGIN_SECRET);
    }
    let server = Server(serve.arg("serve").spawn().expect("starting veza"));
    let pid = server.0.id();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{origin}/healthz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "veza did not start: {}",
            std::fs::read_to_string(home.join("veza.err")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = upload_tracks(o, home, &client, &origin, &token).await;

    let tick = clock_tick();
    let (rss_idle, cpu0) = usage(pid, tick);
    let peak = Arc::new(Mutex::new(rss_idle));
    let stop = Instant::now() + Duration::from_secs(o.secs);
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while Instant::now() < stop {
                let (rss, _) = usage(pid, tick);
                {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(rss);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    let players: Vec<_> = (0..o.players)
        .map(|i| {
            let (origin, id) = (origin.clone(), ids[i % ids.len()].clone());
            tokio::spawn(player(i, origin, id, stop))
        })
        .collect();
    let mut r = Report::default();
    let mut lat: Vec<u32> = Vec::new();
    for p in players {
        let t = p.await.unwrap();
        r.requests += t.lat.len() as u64;
        r.errors += t.errors;
        r.bytes += t.bytes;
        r.issued += t.issued;
        r.playlists += t.playlists;
        r.segments += t.segments;
        if r.error_samples.len() < 5 {
            r.error_samples.extend(t.samples);
        }
        lat.extend(t.lat);
    }
    r.secs = started.elapsed().as_secs_f64();
    sampler.await.unwrap();
    let (_, cpu1) = usage(pid, tick);
    r.cpu_secs = cpu1 - cpu0;
    r.rss_idle_kib = rss_idle;
    r.rss_peak_kib = *peak.lock().unwrap();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    (r.p50_ms, r.p99_ms, r.max_ms) = (pct(0.50), pct(0.99), pct(1.0));
    {
        let pulls = edge.pulls.lock().unwrap();
        r.edge_objects = pulls.len();
        r.edge_pulls = pulls.values().sum();
        r.edge_max_pulls = pulls.values().copied().max().unwrap_or(0);
    }
    let metrics = client
        .get(format!("{origin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    r.origin_media_requests = metrics
        .lines()
        .filter(|l| l.starts_with("veza_http_requests_total{") && l.contains("/media/{path}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64;
    drop(server);
    r
}

/// Generates and uploads the tracks (public), and waits until each is packaged.
async fn upload_tracks(
    o: &Opts,
    home: &Path,
    client: &reqwest::Client,
    origin: &str,
    token: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..o.tracks {
        let file = home.join(format!("t{n}.mp3"));
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency={}:duration={}",
                220 + 110 * n,
                o.track_secs
            ))
            .args(["-c:a", "libmp3lame", "-b:a", "192k"])
            .arg(&file)
            .status()
            .expect("ffmpeg is required");
        assert!(st.success());
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(std::fs::read(&file).unwrap())
                    .file_name(format!("t{n}.mp3")),
            )
            .text("visibility", "public");
        let t = json(
            client
                .post(format!("{origin}/api/v1/tracks"))
                .multipart(form),
            token,
        )
        .await;
        ids.push(t["id"].as_str().unwrap_or_else(|| panic!("{t}")).to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for id in &ids {
        loop {
            let t = json(client.get(format!("{origin}/api/v1/tracks/{id}")), token).await;
            if t["status"] == "ready" {
                break;
            }
            assert!(
                t["status"] == "processing" && Instant::now() < deadline,
                "{t}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    ids
}

/// Sends `req` with a bearer token; the answer as JSON.
async fn json(req: reqwest::RequestBuilder, token: &str) -> Value {
    req.bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One player's tally.
#[derive(Default)]
struct Tally {
    lat: Vec<u32>,
    errors: u64,
    samples: Vec<String>,
    bytes: u64,
    issued: u64,
    playlists: u64,
    segments: u64,
}

impl Tally {
    /// GET `url`; records latency, bytes and errors; the body on a 2xx.
    async fn get(&mut self, c: &reqwest::Client, url: &str) -> Option<Bytes> {
        let t = Instant::now();
        let got = match c.get(url).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.map_err(|e| e.to_string()),
            Ok(r) => Err(format!("{} {url}", r.status())),
            Err(e) => Err(format!("{e} {url}")),
        };
        self.lat.push(t.elapsed().as_micros() as u32);
        match got {
            Ok(b) => {
                self.bytes += b.len() as u64;
                Some(b)
            }
            Err(e) => {
                self.errors += 1;
                if self.samples.len() < 2 {
                    self.samples.push(e);
                }
                None
            }
        }
    }
}

/// URIs a playlist names (lines and `URI="…"` attributes).
fn uris(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| match l.split("URI=\"").nth(1) {
            Some(rest) => rest.split('"').next().map(str::to_owned),
            None => (!l.is_empty() && !l.starts_with('#')).then(|| l.to_owned()),
        })
        .collect()
}

/// Plays `id` over and over until `stop`: stream URL, master, one rendition, init, segments.
async fn player(i: usize, origin: String, id: String, stop: Instant) -> Tally {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(2)
        .build()
        .unwrap();
    let mut t = Tally::default();
    let mut played = 0;
    'play: while Instant::now() < stop || (played == 0 && t.errors == 0) {
        t.issued += 1;
        let Some(b) = t
            .get(&c, &format!("{origin}/api/v1/tracks/{id}/stream"))
            .await
        else {
            continue;
        };
        let v: Value = serde_json::from_slice(&b).unwrap_or_default();
        let Some(master) = v["url"].as_str().and_then(|u| url::Url::parse(u).ok()) else {
            t.errors += 1;
            continue;
        };
        t.playlists += 1;
        let Some(m) = t.get(&c, master.as_str()).await else {
            continue;
        };
        let renditions = uris(&String::from_utf8_lossy(&m));
        if renditions.is_empty() {
            t.errors += 1;
            continue;
        }
        let media = master.join(&renditions[i % renditions.len()]).unwrap();
        t.playlists += 1;
        let Some(p) = t.get(&c, media.as_str()).await else {
            continue;
        };
        for s in uris(&String::from_utf8_lossy(&p)) {
            // Every player plays one whole track however slow the machine; then it stops on time.
            if Instant::now() >= stop && (played > 0 || t.errors > 0) {
                break 'play;
            }
            t.segments += 1;
            t.get(&c, media.join(&s).unwrap().as_str()).await;
        }
        played += 1;
    }
    t
}
