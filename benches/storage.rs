//! Upload throughput of `BlobStore::put_content_addressed` for one large file, beside `cp` of
//! the same file on the same disk (with and without an fsync, since a put always fsyncs), and
//! on S3 (s3s-fs on loopback) beside a bare SigV4 PUT of the file by curl. Not a criterion
//! bench: each sample writes hundreds of MiB, so a few timed runs and their median say more.
//!
//! `cargo bench --bench storage` (release build); `VEZA_BENCH_MIB=64` for a quicker run.
//! Needs `s3s-fs` (`cargo install s3s-fs --features binary`) and curl ≥ 7.75 on PATH.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veza::config::{Secret, StorageBackend, StorageConfig};
use veza::storage::{BlobStore, ByteStream};

const RUNS: usize = 3;
const READ_CHUNK: usize = 256 * 1024;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("spawn");
    assert!(st.success(), "{cmd:?}: {st}");
}

async fn file_stream(path: &Path) -> ByteStream {
    let f = tokio::fs::File::open(path).await.unwrap();
    Box::pin(tokio_util::io::ReaderStream::with_capacity(f, READ_CHUNK))
}

fn config(backend: StorageBackend, root: &Path, endpoint: &str) -> StorageConfig {
    let mut c = veza::config::from_toml_str("").unwrap().storage;
    c.backend = backend;
    c.local_root = root.to_owned();
    c.s3.endpoint = Some(endpoint.parse().unwrap());
    c.s3.bucket = "bench".into();
    c.s3.access_key_id = "AKBENCH".into();
    c.s3.secret_access_key = Secret::new("SKBENCH");
    c
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this runs as a 1 MiB smoke
    // test so CI stays fast.
    let full = std::env::args().any(|a| a == "--bench");
    let mib: usize = std::env::var("VEZA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 256 } else { 1 });
    let bytes = (mib * 1024 * 1024) as f64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Under target/: the same filesystem as the build, not a tmpfs.
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-storage");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let src = base.join("source.bin");
    {
        // Incompressible, deterministic bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut data = vec![0u8; mib * 1024 * 1024];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&src, &data).unwrap();
    }
    let mbs = |secs: f64| bytes / secs / 1e6;

    // --- local ------------------------------------------------------------------------------
    let (mut cp, mut cp_sync, mut local) = (vec![], vec![], vec![]);
    for i in 0..RUNS {
        let dst = base.join(format!("cp-{i}.bin"));
        cp.push(timed(|| run(Command::new("cp").arg(&src).arg(&dst))));
        std::fs::remove_file(&dst).unwrap();
        cp_sync.push(timed(|| {
            run(Command::new("cp").arg(&src).arg(&dst));
            run(Command::new("sync").arg(&dst));
        }));
        std::fs::remove_file(&dst).unwrap();

        let root = base.join(format!("local-{i}"));
        let store = rt
            .block_on(BlobStore::open(&config(
                StorageBackend::Local,
                &root,
                "http://x",
            )))
            .unwrap();
        local.push(timed(|| {
            rt.block_on(async {
                let body = file_stream(&src).await;
                store
                    .put_content_addressed("originals", "bin", body, u64::MAX)
                    .await
                    .unwrap();
            })
        }));
        std::fs::remove_dir_all(&root).unwrap();
    }
    let (cp, cp_sync, local) = (median(cp), median(cp_sync), median(local));

    // --- s3 (s3s-fs on loopback) -------------------------------------------------------------
    let s3_root = base.join("s3");
    std::fs::create_dir_all(s3_root.join("bench")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "AKBENCH", "--secret-key", "SKBENCH"])
            .arg(&s3_root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs on PATH (cargo install s3s-fs --features binary)"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let store = rt
        .block_on(BlobStore::open(&config(
            StorageBackend::S3,
            &base,
            &endpoint,
        )))
        .unwrap();
    let (mut curl, mut s3) = (vec![], vec![]);
    for i in 0..RUNS {
        curl.push(timed(|| {
            run(Command::new("curl")
                .args([
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--aws-sigv4",
                    "aws:amz:us-east-1:s3",
                ])
                .args(["--user", "AKBENCH:SKBENCH"])
                .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
                .arg("-T")
                .arg(&src)
                .arg(format!("{endpoint}/bench/curl-{i}.bin")))
        }));
        s3.push(timed(|| {
            rt.block_on(async {
                let body = file_stream(&src).await;
                let st = store
                    .put_content_addressed("originals", "bin", body, u64::MAX)
                    .await
                    .unwrap();
                store.delete(&st.key).await.unwrap();
            })
        }));
    }
    let (curl, s3) = (median(curl), median(s3));

    println!(
        "file: {mib} MiB, median of {RUNS} runs, MB/s = 10^6 bytes/s; ratio = time / reference time"
    );
    let row = |what: &str, secs: f64, refs: &[(&str, f64)]| {
        let r: Vec<String> = refs
            .iter()
            .map(|(name, t)| format!("{:.2}x {name}", secs / t))
            .collect();
        println!("{what:<30} {:>7.0} MB/s  {}", mbs(secs), r.join(", "));
    };
    row("cp", cp, &[]);
    row("cp + sync FILE", cp_sync, &[]);
    row(
        "local put_content_addressed",
        local,
        &[("cp", cp), ("cp+sync", cp_sync)],
    );
    row("curl PUT to s3s-fs", curl, &[]);
    row(
        "s3 put_content_addressed",
        s3,
        &[("curl PUT", curl), ("local put", local)],
    );
    let _ = std::fs::remove_dir_all(&base);
}
