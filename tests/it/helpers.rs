//! Shared test fixtures: the real app on port 0 with a temp data dir, the real binary, and
//! envelope assertions.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use veza::accounts::Role;
use veza::config::Config;
use warp::Filter;

/// A running app and what it needs to stay alive.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub state: veza::http::state::AppState,
    /// The first-run setup link (no admin exists in a fresh app).
    pub setup_link: Option<String>,
    stop: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    _tmp: tempfile::TempDir,
}

impl TestApp {
    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` (with a bearer token when given), as JSON.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// Uploads `file` with extra form fields (`title`, `visibility`, …) as the token's user.
    pub async fn upload_with(
        &self,
        token: &str,
        file: &Path,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        upload_to(&self.client, &self.url(""), token, file, fields).await
    }

    /// Uploads `file` as the token's user; asserts 201 and returns the track.
    pub async fn upload(&self, token: &str, file: &Path) -> Value {
        let r = self.upload_with(token, file, &[]).await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// Polls the track until its status is `want` (panics after `secs`).
    pub async fn wait_status(&self, token: &str, id: &str, want: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self
                .get_json(&format!("/api/v1/tracks/{id}"), Some(token))
                .await;
            if t["status"] == want {
                return t;
            }
            assert!(Instant::now() < deadline, "track never became {want}: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the track until it is `ready` (panics after 60 s).
    pub async fn wait_ready(&self, token: &str, id: &str) -> Value {
        self.wait_status(token, id, "ready", 60).await
    }

    /// `GET path`, with a bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(self.client.get(self.url(path)), token).await
    }

    /// `DELETE path`, with a bearer token when given.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(self.client.delete(self.url(path)), token).await
    }

    /// `POST path` with a JSON body, with a bearer token when given.
    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.send(self.client.post(self.url(path)).json(body), token)
            .await
    }

    /// `PATCH path` with a JSON body, with a bearer token when given.
    pub async fn patch_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        self.send(self.client.patch(self.url(path)).json(body), token)
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::Response {
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
        .await
        .unwrap()
    }

    /// A signed URL (made for the app's `server.public_url`) as a player on this machine
    /// reaches it: on the app's real port.
    pub fn reach(&self, url: &str) -> String {
        let public = self.state.config.server.public_url.as_str();
        url.replacen(public.trim_end_matches('/'), &self.url(""), 1)
    }

    /// `GET` of a signed URL, as the CDN (or a player) pulls it from the origin.
    pub async fn origin_get(&self, signed_url: &str) -> reqwest::Response {
        self.client
            .get(self.reach(signed_url))
            .send()
            .await
            .unwrap()
    }

    /// Stops the server and waits for it before the temp dir goes away.
    pub async fn stop(mut self) {
        if let Some((tx, task)) = self.stop.take() {
            let _ = tx.send(());
            task.await.unwrap();
        }
    }
}

/// `POST {base}/api/v1/tracks` with `file` and extra form fields, as the token's user.
pub async fn upload_to(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    file: &Path,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(file).unwrap())
            .file_name(file.file_name().unwrap().to_string_lossy().into_owned()),
    );
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    client
        .post(format!("{base}/api/v1/tracks"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Starts the app with defaults (temp data dir, 127.0.0.1:0).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `tweak` adjusts the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let toml = format!(
        "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n",
        data_dir.display().to_string()
    );
    let mut config = veza::config::from_toml_str(&toml).unwrap();
    config.storage.local_root = data_dir.join("blobs");
    tweak(&mut config);
    // What Settings shows: the base TOML's layers (a tweak changes only the typed config).
    let masked = veza::config::masked_toml_str(&config, &toml).unwrap();
    let app = veza::App::build(config).await.unwrap();
    app.set_effective_config(masked);
    let addr = app.local_addr();
    let state = app.state().clone();
    let setup_link = app.issue_setup_link().await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        rx.await.ok();
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        data_dir,
        state,
        setup_link,
        stop: Some((tx, task)),
        _tmp: tmp,
    }
}

/// Asserts status, the envelope's code, a non-empty request id equal to the header's.
pub async fn assert_envelope(
    resp: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let header_id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let body: serde_json::Value = resp.json().await.unwrap();
    let err = &body["error"];
    assert_eq!(err["code"], code, "{body}");
    assert!(!err["message"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(err["request_id"], header_id.as_str(), "{body}");
    body
}

/// The real `veza` binary with a clean environment (only PATH and HOME), run in `cwd`.
/// `veza migrate` in `home` (CLI commands other than serve and migrate never create the
/// database themselves).
pub fn migrate(home: &Path) {
    let out = veza(home).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn veza(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veza"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .current_dir(cwd);
    c
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The path of a required external tool; fails the test (never skips) when it is missing.
pub fn require_tool(name: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is required by this test and is not installed; run ./.ci/test, which installs it"
    )
}

/// Creates a user directly in the database; returns their id.
pub async fn create_user(
    app: &TestApp,
    username: &str,
    password: &str,
    role: veza::accounts::Role,
) -> String {
    let name = veza::accounts::Username::parse(username).unwrap();
    let hash = veza::accounts::hash_password(password).unwrap();
    app.state
        .db
        .call(move |c| veza::accounts::store::create_user(c, &name, &hash, role, 0))
        .await
        .unwrap()
        .id
}

/// Creates a user and an API token for them; returns (user id, token).
pub async fn user_with_token(
    app: &TestApp,
    username: &str,
    role: veza::accounts::Role,
) -> (String, String) {
    let id = create_user(app, username, "a-long-password", role).await;
    let token = veza::accounts::new_api_token();
    let hash = veza::accounts::secret_hash(&token);
    let uid = id.clone();
    app.state
        .db
        .call(move |c| veza::accounts::store::create_token(c, &uid, "test", &hash, 0, None))
        .await
        .unwrap();
    (id, token)
}

/// Runs the real binary with `args` (`&[]` = the default command, serve) on a free port in
/// `home`; returns the child and the address from its start-up line.
pub fn serve_binary(home: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = veza(home)
        .args(args)
        .env("VEZA_SERVER__LISTEN", "127.0.0.1:0")
        .env("VEZA_LOG__FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
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
    (child, addr)
}

/// Runs `promtool check metrics` on a scrape; panics with promtool's words if it objects.
pub fn promtool_check_metrics(text: &str) {
    let mut cmd = Command::new(require_tool("promtool"));
    cmd.args(["check", "metrics"]);
    let out = piped(cmd, text);
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Runs the real binary in `home` with `args`, writing `stdin` to it; its output.
pub fn run_with_stdin(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = veza(home);
    cmd.args(args);
    piped(cmd, stdin)
}

/// Runs `cmd` with `input` on its stdin; its output.
pub fn piped(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `GET http://{addr}{path}` with a bearer token, as JSON, from synchronous test code.
pub fn blocking_get_json(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    addr: &str,
    path: &str,
    token: &str,
) -> Value {
    let (c, url, t) = (
        client.clone(),
        format!("http://{addr}{path}"),
        token.to_owned(),
    );
    rt.block_on(async move {
        c.get(url)
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
}

/// Uploads `file` to the server at `addr` from synchronous test code; asserts 201 and returns
/// the track id.
pub fn blocking_upload(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    addr: &str,
    token: &str,
    file: &Path,
) -> String {
    rt.block_on(async {
        let r = upload_to(client, &format!("http://{addr}"), token, file, &[]).await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    })
}

/// With the real binary in `home`: creates the admin `root` and an API token for them; returns
/// the token.
pub fn cli_admin_token(home: &Path) -> String {
    migrate(home);
    let made = run_with_stdin(
        home,
        &["admin", "create", "--username", "root", "--password-stdin"],
        "root-password-1\n",
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let tok = veza(home)
        .args(["token", "create", "--username", "root", "--name", "t"])
        .output()
        .unwrap();
    assert!(tok.status.success(), "{}", stderr(&tok));
    stdout(&tok).trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Media fixtures: generated audio, packaged tracks, an S3-compatible server.

/// A `secs`-long stereo tone MP3 at `kbps`, in `dir`.
pub fn tone(dir: &Path, name: &str, secs: u32, kbps: u32) -> PathBuf {
    require_tool("ffmpeg");
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "anoisesrc=color=pink:amplitude=0.1:duration={secs}"
        ))
        .args([
            "-filter_complex",
            "amix=inputs=2,aformat=channel_layouts=stereo",
        ])
        .args(["-c:a", "libmp3lame", "-b:a"])
        .arg(format!("{kbps}k"))
        .args(["-metadata", "title=Tone"])
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join(name)
}

/// In `data`: an editor's uploaded `secs`-long tone whose packaging job (with `max_attempts`)
/// waits, and whose stored original is then overwritten with junk. The app is stopped; the
/// caller starts its own on `data` with ffmpeg. Returns the editor's token and the track id.
pub async fn track_with_damaged_original(
    data: &Path,
    secs: u32,
    max_attempts: u32,
) -> (String, String) {
    let fx = tempfile::tempdir().unwrap();
    let d = data.to_owned();
    // Without ffmpeg, so the job waits while the stored original is damaged.
    let app = spawn_app_with(move |c| {
        c.data_dir = d.clone();
        c.storage.local_root = d.join("blobs");
        c.hls.ffmpeg = "/nonexistent/ffmpeg".into();
        // A job keeps the attempt budget it was enqueued with.
        c.jobs.max_attempts = max_attempts;
    })
    .await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = app.upload(&ed, &tone(fx.path(), "a.mp3", secs, 128)).await;
    let id = t["id"].as_str().unwrap().to_owned();
    let sha = t["sha256"].as_str().unwrap().to_owned();
    app.stop().await;
    let original = data
        .join("blobs/originals")
        .join(&sha[..2])
        .join(&sha[2..4])
        .join(format!("{sha}.mp3"));
    let junk: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&original, junk).unwrap();
    (ed, id)
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Lines of a playlist that name other objects: URIs and `URI="…"` attributes.
pub fn playlist_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.split("URI=\"").nth(1) {
            out.push(rest.split('"').next().unwrap().to_owned());
        } else if !line.starts_with('#') {
            out.push(line.to_owned());
        }
    }
    out
}

/// Plays an HLS tree as a player does: master → media playlists → init and segments, each URI
/// resolved against the URL it came from. Checks each object's headers; returns the URLs.
pub async fn play(client: &reqwest::Client, master: &str, id: &str) -> Vec<String> {
    const PLAYLIST: (&str, &str) = ("application/vnd.apple.mpegurl", "public, max-age=60");
    const SEGMENT: (&str, &str) = ("audio/mp4", "public, max-age=86400, immutable");
    // GET with the object's headers checked: 200, content type, cache lifetime, CDN tag.
    let fetch = |u: url::Url, (ct, cc): (&'static str, &'static str)| {
        let client = client.clone();
        let id = id.to_owned();
        async move {
            let resp = client.get(u.clone()).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{u}");
            check_kind(&resp, ct, cc, &id);
            resp
        }
    };
    let master_url = url::Url::parse(master).unwrap();
    let mut fetched = vec![master_url.to_string()];
    let text = fetch(master_url.clone(), PLAYLIST)
        .await
        .text()
        .await
        .unwrap();
    let media = playlist_uris(&text);
    assert!(!media.is_empty(), "{text}");
    for m in media {
        let url = master_url.join(&m).unwrap();
        let text = fetch(url.clone(), PLAYLIST).await.text().await.unwrap();
        fetched.push(url.to_string());
        let segs = playlist_uris(&text);
        assert!(!segs.is_empty(), "{text}");
        for s in segs {
            let seg_url = url.join(&s).unwrap();
            let body = fetch(seg_url.clone(), SEGMENT).await.bytes().await.unwrap();
            // Content-addressed: the name is the hash of the bytes.
            assert_eq!(
                s.rsplit('/').next().unwrap().split('.').next().unwrap(),
                hex_sha(&body)
            );
            fetched.push(seg_url.to_string());
        }
    }
    fetched
}

pub fn check_kind(r: &reqwest::Response, content_type: &str, cache: &str, id: &str) {
    assert_eq!(header(r, "content-type"), content_type, "{}", r.url());
    assert_eq!(header(r, "cache-control"), cache, "{}", r.url());
    assert_eq!(header(r, "cdn-tag"), format!("track-{id}"), "{}", r.url());
    assert_eq!(header(r, "accept-ranges"), "bytes");
}

pub const ACCESS_KEY: &str = "AKSTORAGE";

pub const SECRET_KEY: &str = "SKSTORAGE";

/// An s3s-fs process, killed when the test ends however it ends.
pub struct S3sFs {
    child: Child,
    pub endpoint: String,
}

impl S3sFs {
    /// Kills the server (an outage); [`start_s3s_on`] with the same root and port brings the
    /// same store back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts s3s-fs on a free loopback port serving `root` (each folder is a bucket).
pub fn start_s3s(root: &Path) -> S3sFs {
    start_s3s_on(root, free_port())
}

/// Starts s3s-fs serving `root` on `port` (to restart a stopped one where clients expect it).
pub fn start_s3s_on(root: &Path, port: u16) -> S3sFs {
    let bin = require_tool("s3s-fs");
    let log = root.with_extension("log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("starting s3s-fs");
    let mut server = S3sFs {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "s3s-fs exited with {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// Starts `weed server -s3` (master, volume, filer, S3 gateway) on free loopback ports with
/// its data under `root` and one S3 identity, and creates `bucket`; killed on drop.
pub fn start_weed(root: &Path, bucket: &str) -> S3sFs {
    let bin = require_tool("weed");
    std::fs::create_dir_all(root.join("data")).unwrap();
    let identities = root.join("s3.json");
    std::fs::write(
        &identities,
        format!(
            r#"{{"identities":[{{"name":"veza","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        ),
    )
    .unwrap();
    // Each service also listens on its port + 10000 (gRPC): pick ports with that one free too.
    let port = || loop {
        let p = free_port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    };
    let (master, volume, filer, s3) = (port(), port(), port(), port());
    let log = std::fs::File::create(root.join("weed.log")).unwrap();
    let child = Command::new(bin)
        .args([
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-volume.max=8",
        ])
        .arg(format!("-dir={}", root.join("data").display()))
        .arg(format!("-master.port={master}"))
        .arg(format!("-volume.port={volume}"))
        .args(["-filer", &format!("-filer.port={filer}")])
        .args(["-s3", &format!("-s3.port={s3}")])
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-s3.config={}", identities.display()))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting weed");
    let mut weed = S3sFs {
        child,
        endpoint: format!("http://127.0.0.1:{s3}"),
    };
    // Ready when the bucket can be created (the gateway answers and has found the filer).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = weed.child.try_wait() {
            panic!(
                "weed exited with {status}: {}",
                std::fs::read_to_string(root.join("weed.log")).unwrap_or_default()
            );
        }
        if weed_s3(&weed.endpoint, bucket, &["-X", "PUT"], "").is_some() {
            return weed;
        }
        assert!(Instant::now() < deadline, "SeaweedFS S3 never became ready");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A SigV4-signed request to `{endpoint}/{bucket}{query}` with curl; the body on 2xx.
pub fn weed_s3(endpoint: &str, bucket: &str, args: &[&str], query: &str) -> Option<String> {
    let out = Command::new(require_tool("curl"))
        .args(["-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
        .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
        .args(args)
        .arg(format!("{endpoint}/{bucket}{query}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn hex_sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The app (after `tweak`) behind a `spawn_edge` edge on loopback: Bunny signing with
/// `security_key`, tokens verified, the edge's pulls proven by `origin_secret`. Returns the app
/// and the edge's URL.
pub async fn spawn_app_behind_edge(
    security_key: &'static str,
    origin_secret: &'static str,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, String) {
    let origin = Arc::new(OnceLock::new());
    let edge = spawn_edge(origin.clone(), security_key, origin_secret).await;
    let edge_url = format!("http://{edge}");
    let app = spawn_app_with(|c| {
        tweak(c);
        c.cdn.enabled = true;
        c.cdn.provider = veza::config::CdnProvider::Bunny;
        c.cdn.base_url = Some(url::Url::parse(&edge_url).unwrap());
        c.cdn.security_key = veza::config::Secret::new(security_key);
        c.cdn.bunny.verify_tokens = true;
        c.cdn.bunny.origin_secret = veza::config::Secret::new(origin_secret);
    })
    .await;
    origin.set(app.url("")).unwrap();
    (app, edge_url)
}

/// An edge that does what a Bunny pull zone with token authentication and an origin-secret
/// edge rule does: checks the token (403 otherwise), drops it, and pulls
/// `{origin}/media{path}` with the origin-secret header. `origin` is set once the app listens.
pub async fn spawn_edge(
    origin: Arc<OnceLock<String>>,
    security_key: &'static str,
    origin_secret: &'static str,
) -> SocketAddr {
    let client = reqwest::Client::new();
    let route = warp::path::full()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .then(
            move |full: warp::path::FullPath, query: String, headers: warp::http::HeaderMap| {
                let client = client.clone();
                let origin = origin.clone();
                async move {
                    let path = full.as_str();
                    let target = if query.is_empty() {
                        path.to_owned()
                    } else {
                        format!("{path}?{query}")
                    };
                    let mut resp = warp::http::Response::builder();
                    if veza::signing::bunny::verify(
                        &target,
                        security_key,
                        veza::clock::now() as u64,
                        None,
                    )
                    .is_err()
                    {
                        return resp
                            .status(403)
                            .body(bytes::Bytes::from_static(b"edge: 403"))
                            .unwrap();
                    }
                    // Path form: the first segment is the token; the rest is the object path.
                    let wire = match path.strip_prefix("/bcdn_token=") {
                        Some(rest) => &rest[rest.find('/').unwrap()..],
                        None => path,
                    };
                    let mut pull = client
                        .get(format!("{}/media{wire}", origin.get().unwrap()))
                        .header(veza::http::media::ORIGIN_SECRET_HEADER, origin_secret);
                    if let Some(r) = headers.get("range") {
                        pull = pull.header("range", r.to_str().unwrap());
                    }
                    let got = pull.send().await.unwrap();
                    resp = resp.status(got.status().as_u16());
                    for (k, v) in got.headers() {
                        resp = resp.header(k.as_str(), v.as_bytes());
                    }
                    resp.body(got.bytes().await.unwrap()).unwrap()
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    addr
}

/// A 16-bit stereo 44.1 kHz WAV: `ms` of a `freq` Hz sine with a little `seed`-driven noise
/// (distinct seeds give distinct bytes), built in memory without ffmpeg. `claimed_data` overrides
/// the data chunk's size field (a header that lies about the duration).
pub fn wav(ms: u32, freq: f64, seed: u64, claimed_data: Option<u32>) -> Vec<u8> {
    const RATE: u32 = 44_100;
    let frames = RATE as u64 * ms as u64 / 1000;
    let data_len = (frames * 4) as u32;
    let claimed = claimed_data.unwrap_or(data_len);
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&claimed.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&claimed.to_le_bytes());
    let mut x = seed | 1;
    for i in 0..frames {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = (x % 2001) as f64 - 1000.0;
        let t = i as f64 / RATE as f64;
        let s = ((t * freq * std::f64::consts::TAU).sin() * 8000.0 + noise) as i16;
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}
