//! Shared test fixtures: the real app on port 0 with a temp data dir, the real binary, and
//! envelope assertions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokio::sync::oneshot;
use veza::config::Config;

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

    /// Stops the server and waits for it before the temp dir goes away.
    pub async fn stop(mut self) {
        if let Some((tx, task)) = self.stop.take() {
            let _ = tx.send(());
            task.await.unwrap();
        }
    }
}

/// Starts the app with defaults (temp data dir, 127.0.0.1:0).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `tweak` adjusts the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut config = veza::config::from_toml_str(&format!(
        "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n",
        data_dir.display().to_string()
    ))
    .unwrap();
    config.storage.local_root = data_dir.join("blobs");
    tweak(&mut config);
    let app = veza::App::build(config).await.unwrap();
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
    use std::io::Write;
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Runs the real binary in `home` with `args`, writing `stdin` to it; its output.
pub fn run_with_stdin(home: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = veza(home)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
