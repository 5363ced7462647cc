//! Signing end to end: every worked example through the real `veza sign`, presigned URLs
//! fetched from a real S3-compatible server (s3s-fs), nginx `secure_link` URLs checked by a real
//! nginx, CloudFront signatures checked by openssl, and the fallback chain with a broken first
//! provider. A missing tool fails the test with its name: nothing is skipped silently.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::helpers::{free_port, stderr, stdout, veza};

const BUNNY_KEY: &str = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40";

fn vectors() -> serde_json::Value {
    let text = include_str!("../fixtures/signing-examples.json");
    // The copy must not drift from the shared original when it is beside the repo.
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/signing-examples.json"
    );
    if let Ok(original) = fs::read_to_string(shared) {
        assert_eq!(
            text, original,
            "tests/fixtures/signing-examples.json differs from {shared}"
        );
    }
    serde_json::from_str(text).unwrap()
}

/// `veza --config <empty file> sign ARGS` in `dir` with only `envs` set.
fn sign(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let cfg = dir.join("empty.toml");
    if !cfg.exists() {
        fs::write(&cfg, "").unwrap();
    }
    let mut c = veza(dir);
    c.arg("--config").arg(&cfg).arg("sign").args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The printed URL; asserts success and that stdout is exactly one line.
fn signed_url(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        stderr(out)
    );
    let text = stdout(out);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    text.trim_end().to_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Finds a program on PATH (or /usr/sbin, ~/.cargo/bin); panics naming it and how to get it.
fn tool(name: &str, install: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    dirs.push("/usr/sbin".into());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is required by this test but was not found on PATH; install it: {install}"
            )
        })
}

/// A child process killed when the test ends, however it ends.
struct Server(Child, &'static str);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn wait_for(&mut self, addr: SocketAddr, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.0.try_wait() {
                panic!(
                    "{} exited with {status}: {}",
                    self.1,
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr}: {}",
                self.1,
                fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn(program: &Path, args: &[&str], log: &Path, name: &'static str) -> Server {
    let out = fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Server(child, name)
}

/// Status and body; the body is shown as text (truncated) when an assertion fails.
async fn get(client: &reqwest::Client, url: &str) -> (u16, Body) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, Body(r.bytes().await.unwrap().to_vec()))
}

#[derive(PartialEq, Eq)]
struct Body(Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = String::from_utf8_lossy(&self.0[..self.0.len().min(300)]).into_owned();
        write!(f, "{} bytes: {text:?}", self.0.len())
    }
}

/// Changes one character of the `name=` parameter's value, staying within hex and base64.
fn tamper(url: &str, name: &str) -> String {
    let at = url.find(&format!("{name}=")).unwrap() + name.len() + 3;
    let mut b = url.as_bytes().to_vec();
    b[at] = if b[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_bunny_example_prints_its_url_through_veza_sign() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (family, scheme) in [("bunny_hs256", "hs256"), ("bunny_v2_sha256", "sha256")] {
        for case in v["schemes"][family].as_array().unwrap() {
            let inp = &case["inputs"];
            let s = |k: &str| inp[k].as_str().unwrap_or("").to_owned();
            let expires = inp["expires"].as_u64().unwrap().to_string();
            let mut args: Vec<String> = vec!["--expires".into(), expires];
            args.push(
                if inp["path_form"].as_bool().unwrap() {
                    "--path-form"
                } else {
                    "--query-form"
                }
                .into(),
            );
            for (flag, key) in [
                ("--token-path", "token_path"),
                ("--ip", "user_ip"),
                ("--countries", "countries_allowed"),
                ("--countries-blocked", "countries_blocked"),
            ] {
                if !s(key).is_empty() {
                    args.extend([flag.to_owned(), s(key)]);
                }
            }
            if let Some(limit) = inp["speed_limit"].as_u64().filter(|l| *l > 0) {
                args.extend(["--speed-limit".into(), limit.to_string()]);
            }
            if inp["ignore_params"].as_bool() == Some(true) {
                args.push("--ignore-params".into());
            }
            for kv in inp["query"].as_array().into_iter().flatten() {
                args.extend([
                    "--query".into(),
                    format!("{}={}", kv[0].as_str().unwrap(), kv[1].as_str().unwrap()),
                ]);
            }
            args.push(s("raw_path"));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = sign(
                dir.path(),
                &[
                    ("CDN_ENABLED", "true"),
                    ("CDN_PROVIDER", "bunny"),
                    ("CDN_BASE_URL", &s("base_url")),
                    ("CDN_SECURITY_KEY", &s("security_key")),
                    ("VEZA_CDN__BUNNY__SCHEME", scheme),
                ],
                &args,
            );
            assert_eq!(
                signed_url(&out),
                case["expected"]["url"].as_str().unwrap(),
                "{}",
                case["id"]
            );
            n += 1;
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn the_aws_presign_example_prints_byte_for_byte_through_veza_sign() {
    let v = vectors();
    let dir = tempfile::tempdir().unwrap();
    for case in v["schemes"]["s3_sigv4_presign"].as_array().unwrap() {
        let inp = &case["inputs"];
        let s = |k: &str| inp[k].as_str().unwrap().to_owned();
        let ttl = inp["expires"].as_u64().unwrap().to_string();
        let path_style = (s("addressing") == "path").to_string();
        let out = sign(
            dir.path(),
            &[
                ("VEZA_STORAGE__S3__ENDPOINT", &s("endpoint")),
                ("VEZA_STORAGE__S3__BUCKET", &s("bucket")),
                ("VEZA_STORAGE__S3__REGION", &s("region")),
                ("VEZA_STORAGE__S3__ACCESS_KEY_ID", &s("access_key")),
                ("VEZA_STORAGE__S3__SECRET_ACCESS_KEY", &s("secret_key")),
                ("VEZA_STORAGE__S3__PATH_STYLE", &path_style),
            ],
            &[
                "--provider",
                "s3",
                "--now",
                &s("amz_date"),
                "--ttl",
                &ttl,
                &s("key"),
            ],
        );
        assert_eq!(
            signed_url(&out),
            case["expected"]["url"].as_str().unwrap(),
            "{}",
            case["id"]
        );
    }
}

#[test]
fn json_output_exit_codes_and_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let bunny = [
        ("CDN_ENABLED", "true"),
        ("CDN_PROVIDER", "bunny"),
        ("CDN_BASE_URL", "https://veza-test.b-cdn.net"),
        ("CDN_SECURITY_KEY", BUNNY_KEY),
    ];
    let out = sign(
        dir.path(),
        &bunny,
        &[
            "--json",
            "--query-form",
            "--expires",
            "1767225600",
            "/tracks/7f3a9c/original.flac",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&signed_url(&out)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "url": "https://veza-test.b-cdn.net/tracks/7f3a9c/original.flac?token=HS256-H6aP3OJa3XHh3hRF6jsUvCFPfH0SNeAr0owdlz1-p44&expires=1767225600",
            "expires_at": 1767225600,
            "provider": "bunny",
            "fallback": false
        })
    );
    // Default lifetime: now + cdn.ttl_secs; the path form is the configured default.
    let out = sign(dir.path(), &bunny, &["--now", "1767225600", "/a.flac"]);
    assert!(signed_url(&out).ends_with("&expires=1767229200/a.flac"));

    for bad in [
        vec!["--countries", "FRA", "/a.flac"],
        vec!["--query", "novalue", "/a.flac"],
        vec!["--token-path", "/b/", "/a/x.flac"],
        vec!["--ttl", "0", "/a.flac"],
        vec!["/a/../b.flac"],
        vec!["--now", "2013-05-24", "/a.flac"],
        vec!["--ttl", "5", "--expires", "9", "/a.flac"],
        vec!["--path-form", "--query-form", "/a.flac"],
        vec!["--provider", "akamai", "/a.flac"],
    ] {
        let out = sign(dir.path(), &bunny, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
        assert!(
            stdout(&out).is_empty() && !stderr(&out).is_empty(),
            "{bad:?}"
        );
        assert!(!stderr(&out).contains(BUNNY_KEY));
    }
    let out = sign(
        dir.path(),
        &[("CDN_ENABLED", "true"), ("CDN_PROVIDER", "bunny")],
        &["/a.flac"],
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cdn.security_key"),
        "{}",
        stderr(&out)
    );
    let out = sign(
        dir.path(),
        &[("VEZA_CDN__NGINX__EXPRESSION", "{uri}")],
        &["/a.flac"],
    );
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));

    // The local provider made its key, and nothing else: no database.
    let out = sign(dir.path(), &[], &["/a.flac"]);
    assert!(signed_url(&out).starts_with("http://127.0.0.1:8080/media/vzt."));
    let data = dir.path().join("veza-data");
    let names: Vec<String> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["signing.key".to_owned()]);
}

#[test]
fn a_local_url_from_the_cli_verifies_with_the_same_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let envs = [
        ("VEZA_DATA_DIR", data_s),
        ("VEZA_SERVER__PUBLIC_URL", "https://veza.example"),
    ];
    let out = sign(
        dir.path(),
        &envs,
        &[
            "--token-path",
            "/tracks/7f3a9c/hls/",
            "--ttl",
            "60",
            "/tracks/7f3a9c/hls/master.m3u8",
        ],
    );
    let url = signed_url(&out);
    assert!(url.starts_with("https://veza.example/media/vzt."), "{url}");
    let cfg = veza::config::from_toml_str(&format!("data_dir = {data_s:?}")).unwrap();
    let local = veza::signing::LocalSigner::from_config(&cfg).unwrap();
    let now = unix_now();
    let seg = url.replace("master.m3u8", "v0/seg1.m4s");
    assert_eq!(
        local.verify(&seg, now, None).unwrap().path,
        "/tracks/7f3a9c/hls/v0/seg1.m4s"
    );
    assert!(local.verify(&seg, now + 120, None).is_err());
    assert!(
        local
            .verify(&url.replace("/7f3a9c/", "/7f3a9d/"), now, None)
            .is_err()
    );
}

#[test]
fn a_broken_first_provider_falls_back_and_the_counter_moves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::write(
        dir.path().join("garbage.pem"),
        "-----BEGIN PRIVATE KEY-----\nnope\n",
    )
    .unwrap();
    for key_file in ["missing.pem", "garbage.pem"] {
        let toml = format!(
            "data_dir = {:?}\n[cdn]\nenabled = true\nprovider = \"cloudfront\"\nbase_url = \"https://d1.cloudfront.net\"\nfallback = [\"s3\", \"local\"]\n[cdn.cloudfront]\nkey_pair_id = \"K1\"\nprivate_key_path = {:?}\n",
            data.display().to_string(),
            dir.path().join(key_file).display().to_string()
        );
        let cfg = veza::config::from_toml_str(&toml).unwrap();
        let metrics = veza::metrics::Metrics::new("t", "t").unwrap();
        let service = veza::signing::CdnService::new(&cfg, &metrics);
        assert!(service.is_enabled());
        let broken = service.warm();
        assert_eq!(
            broken.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["cloudfront", "s3"],
            "{broken:?}"
        );
        for _ in 0..2 {
            let signed = service
                .sign(&veza::signing::SignRequest::new(
                    "/tracks/x/original.flac",
                    unix_now(),
                ))
                .unwrap();
            assert_eq!(signed.provider.as_str(), "local");
            assert!(signed.fallback);
            let local = service.local().unwrap();
            assert!(local.verify(&signed.url, unix_now(), None).is_ok());
        }
        let text = metrics.render().unwrap();
        for line in [
            r#"veza_signing_total{outcome="error",provider="cloudfront"} 2"#,
            r#"veza_signing_total{outcome="error",provider="s3"} 2"#,
            r#"veza_signing_total{outcome="fallback",provider="local"} 2"#,
        ] {
            assert!(text.contains(line), "{key_file}: no {line} in\n{text}");
        }

        // The CLI reports the same through --json, with the warning on stderr only.
        let file = dir.path().join("veza.toml");
        fs::write(&file, &toml).unwrap();
        let out = veza(dir.path())
            .arg("--config")
            .arg(&file)
            .args(["sign", "--json", "/a.flac"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&signed_url(&out)).unwrap();
        assert_eq!(
            (v["provider"].as_str(), v["fallback"].as_bool()),
            (Some("local"), Some(true))
        );
        assert!(stderr(&out).contains("cloudfront"), "{}", stderr(&out));
    }
}

#[test]
fn cloudfront_signatures_verify_with_openssl() {
    let openssl = tool("openssl", "apt-get install openssl");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cf.pem");
    let pubkey = dir.path().join("cf.pub");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    run(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        pubkey.to_str().unwrap(),
    ]);
    let envs = [
        ("CDN_ENABLED", "true"),
        ("CDN_PROVIDER", "cloudfront"),
        ("CDN_BASE_URL", "https://d111111abcdef8.cloudfront.net"),
        ("VEZA_CDN__CLOUDFRONT__KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        (
            "VEZA_CDN__CLOUDFRONT__PRIVATE_KEY_PATH",
            key.to_str().unwrap(),
        ),
    ];
    let out = sign(
        dir.path(),
        &envs,
        &["--json", "--expires", "1767225600", "/tracks/a b.flac"],
    );
    let v: serde_json::Value = serde_json::from_str(&signed_url(&out)).unwrap();
    assert_eq!(
        (v["provider"].as_str(), v["fallback"].as_bool()),
        (Some("cloudfront"), Some(false))
    );
    let url = v["url"].as_str().unwrap();
    let resource = "https://d111111abcdef8.cloudfront.net/tracks/a%20b.flac";
    let (head, sig) = url.split_once("?Expires=1767225600&Signature=").unwrap();
    assert_eq!(head, resource);
    let (sig, kp) = sig.split_once("&Key-Pair-Id=").unwrap();
    assert_eq!(kp, "K2JCJMDEHXQW5F");
    use base64::Engine as _;
    let std: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    fs::write(
        dir.path().join("sig.bin"),
        base64::engine::general_purpose::STANDARD
            .decode(std)
            .unwrap(),
    )
    .unwrap();
    let policy = format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":1767225600}}}}}}]}}"#
    );
    fs::write(dir.path().join("policy.json"), &policy).unwrap();
    let verify = |policy_file: &str| {
        Command::new(&openssl)
            .args([
                "dgst",
                "-sha1",
                "-verify",
                pubkey.to_str().unwrap(),
                "-signature",
            ])
            .arg(dir.path().join("sig.bin"))
            .arg(dir.path().join(policy_file))
            .output()
            .unwrap()
    };
    let ok = verify("policy.json");
    assert!(
        ok.status.success(),
        "openssl refused: {}",
        String::from_utf8_lossy(&ok.stdout)
    );
    fs::write(
        dir.path().join("other.json"),
        policy.replace("1767225600", "1767225601"),
    )
    .unwrap();
    assert!(!verify("other.json").status.success());
}

#[tokio::test]
async fn presigned_urls_download_from_a_real_s3_server_and_tampered_ones_are_refused() {
    let s3s = tool(
        "s3s-fs",
        "cargo install s3s-fs@0.14.1 --features binary --locked (as .ci/test does)",
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    let object = root.join("media").join("tracks").join("a b+c é.flac");
    fs::create_dir_all(object.parent().unwrap()).unwrap();
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&object, &body).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("s3s.log");
    let port_s = port.to_string();
    // s3s matches virtual-hosted names against the Host header, port included.
    let domain = format!("s3.test:{port}");
    let mut server = spawn(
        &s3s,
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--access-key",
            "AKTEST",
            "--secret-key",
            "SKTEST",
            "--domain",
            &domain,
            root.to_str().unwrap(),
        ],
        &log,
        "s3s-fs",
    );
    server.wait_for(addr, &log);

    let endpoint = format!("http://127.0.0.1:{port}");
    let vhost_endpoint = format!("http://s3.test:{port}");
    let envs = |endpoint: &str, path_style: &str, secret: &str| -> Vec<(String, String)> {
        vec![
            ("VEZA_STORAGE__S3__ENDPOINT".into(), endpoint.into()),
            ("VEZA_STORAGE__S3__BUCKET".into(), "media".into()),
            ("VEZA_STORAGE__S3__ACCESS_KEY_ID".into(), "AKTEST".into()),
            ("VEZA_STORAGE__S3__SECRET_ACCESS_KEY".into(), secret.into()),
            ("VEZA_STORAGE__S3__PATH_STYLE".into(), path_style.into()),
        ]
    };
    let run = |envs: Vec<(String, String)>, extra: &[&str]| {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["--provider", "s3"];
        args.extend_from_slice(extra);
        args.push("tracks/a b+c é.flac");
        signed_url(&sign(dir.path(), &envs, &args))
    };
    let client = reqwest::Client::builder()
        .resolve("media.s3.test", addr)
        .resolve("s3.test", addr)
        .build()
        .unwrap();

    let path_url = run(envs(&endpoint, "true", "SKTEST"), &[]);
    assert!(
        path_url.starts_with(&format!(
            "{endpoint}/media/tracks/a%20b%2Bc%20%C3%A9.flac?X-Amz-Algorithm="
        )),
        "{path_url}"
    );
    assert_eq!(
        get(&client, &path_url).await,
        (200, Body(body.clone())),
        "path-style"
    );

    let vhost_url = run(envs(&vhost_endpoint, "false", "SKTEST"), &[]);
    assert!(
        vhost_url.starts_with(&format!("http://media.s3.test:{port}/tracks/")),
        "{vhost_url}"
    );
    assert_eq!(
        get(&client, &vhost_url).await,
        (200, Body(body.clone())),
        "virtual-hosted"
    );

    let with_override = run(
        envs(&endpoint, "true", "SKTEST"),
        &["--query", "response-content-type=audio/flac"],
    );
    let r = client.get(&with_override).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "audio/flac");

    let refused = [
        ("tampered signature", tamper(&path_url, "X-Amz-Signature")),
        ("other object", path_url.replace("a%20b", "a%20c")),
        (
            "longer lifetime",
            path_url.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601"),
        ),
        ("wrong secret", run(envs(&endpoint, "true", "WRONG"), &[])),
        (
            "expired",
            run(
                envs(&endpoint, "true", "SKTEST"),
                &["--now", &(unix_now() - 7200).to_string(), "--ttl", "60"],
            ),
        ),
    ];
    for (what, url) in refused {
        let (status, _) = get(&client, &url).await;
        assert_eq!(status, 403, "{what}: {url}");
    }
    drop(server);
}

#[tokio::test]
async fn nginx_secure_link_accepts_signed_urls_and_refuses_expired_and_tampered_ones() {
    let nginx = tool("nginx", "apt-get install nginx-light (as .ci/test does)");
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let www = tmp.join("www");
    fs::create_dir_all(www.join("tracks")).unwrap();
    fs::create_dir_all(www.join("ip")).unwrap();
    let body = b"fLaC not really".to_vec();
    fs::write(www.join("tracks").join("a b.flac"), &body).unwrap();
    fs::write(www.join("ip").join("x.flac"), &body).unwrap();
    let port = free_port();
    let secret = "nginx-secret-1234";
    let t = tmp.display();
    let conf = format!(
        r#"daemon off;
master_process off;
pid {t}/nginx.pid;
error_log {t}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {t}/www;
        location /tracks/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {secret}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
        location /ip/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri$remote_addr {secret}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
    }}
}}
"#
    );
    let conf_path = tmp.join("nginx.conf");
    fs::write(&conf_path, conf).unwrap();
    let log = tmp.join("error.log");
    let mut server = spawn(
        &nginx,
        &[
            "-e",
            log.to_str().unwrap(),
            "-p",
            tmp.to_str().unwrap(),
            "-c",
            conf_path.to_str().unwrap(),
        ],
        &tmp.join("nginx.out"),
        "nginx",
    );
    server.wait_for(
        format!("127.0.0.1:{port}").parse().unwrap(),
        &tmp.join("nginx.out"),
    );

    let base = format!("http://127.0.0.1:{port}");
    let envs = |expression: &str| -> Vec<(String, String)> {
        vec![
            ("CDN_ENABLED".into(), "true".into()),
            ("CDN_PROVIDER".into(), "nginx".into()),
            ("CDN_BASE_URL".into(), base.clone()),
            ("CDN_SECURITY_KEY".into(), secret.into()),
            ("VEZA_CDN__NGINX__EXPRESSION".into(), expression.into()),
        ]
    };
    let run = |envs: Vec<(String, String)>, args: &[&str]| {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        signed_url(&sign(tmp, &envs, args))
    };
    let plain = envs("{expires}{uri} {secret}");
    let client = reqwest::Client::new();

    let url = run(plain.clone(), &["/tracks/a b.flac"]);
    assert!(
        url.starts_with(&format!("{base}/tracks/a%20b.flac?md5=")),
        "{url}"
    );
    assert_eq!(get(&client, &url).await, (200, Body(body.clone())));
    let expired = run(
        plain.clone(),
        &[
            "--now",
            &(unix_now() - 7200).to_string(),
            "--ttl",
            "60",
            "/tracks/a b.flac",
        ],
    );
    assert_eq!(get(&client, &expired).await.0, 410, "{expired}");
    assert_eq!(get(&client, &tamper(&url, "md5")).await.0, 403);
    let longer = url.replacen("&expires=", "&expires=1", 1);
    assert_eq!(get(&client, &longer).await.0, 403);
    assert_eq!(get(&client, &url.replace("a%20b", "a%20c")).await.0, 403);

    let bound = envs("{expires}{uri}{remote_addr} {secret}");
    let mine = run(bound.clone(), &["--ip", "127.0.0.1", "/ip/x.flac"]);
    assert_eq!(
        get(&client, &mine).await,
        (200, Body(body.clone())),
        "{mine}"
    );
    let other = run(bound, &["--ip", "127.0.0.2", "/ip/x.flac"]);
    assert_eq!(get(&client, &other).await.0, 403);
    drop(server);
}
