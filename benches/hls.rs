//! HLS packaging cost, driven by `benches/hls.sh` (hyperfine beside the bare ffmpeg run):
//!
//! - `hls args FILE` prints, one per line, the ffmpeg arguments `hls::package` runs (outputs
//!   are relative: run them in an empty directory);
//! - `hls package FILE DIR` packages FILE in `DIR/work` and uploads it to a local store in
//!   `DIR/store`, as a job would;
//! - `hls upload-rate FILE` packages FILE once, then times `hls::upload` of the tree into a
//!   fresh local store and into S3 (s3s-fs on loopback), in segments/s.
//!
//! `cargo bench --bench hls` runs `upload-rate` on a generated 5-minute 320 kbps MP3. Under
//! `cargo test --all-targets` (no `--bench`) it is a seconds-long smoke test: a 5 s tone is
//! packaged and uploaded twice, the second upload writing nothing.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use veza::config::{Secret, StorageBackend, StorageConfig};
use veza::hls::{self, FileKind, Options, Packaged};
use veza::storage::BlobStore;

const LADDER: [u32; 3] = [64, 128, 256];
const RUNS: usize = 5;

fn options() -> Options {
    Options {
        ffmpeg: "ffmpeg".into(),
        rungs: LADDER.to_vec(),
        segment_secs: 6,
        timeout: Duration::from_secs(1800),
        gain_db: None,
        // What the packaging job's probe gives for the 5-minute file benches/hls.sh makes.
        source: hls::Source {
            sample_rate: Some(44_100),
            channels: Some(2),
            duration: Some(Duration::from_secs(300)),
        },
    }
}

fn config(backend: StorageBackend, root: &Path, endpoint: &str) -> StorageConfig {
    let mut c = veza::config::from_toml_str("").unwrap().storage;
    c.backend = backend;
    c.local_root = root.to_owned();
    c.s3.endpoint = Some(endpoint.parse().unwrap());
    c.s3.bucket = "bench".into();
    c.s3.access_key_id = "AKBENCH".into();
    c.s3.secret_access_key = Secret::new("SKBENCH");
    c.s3.path_style = true;
    c
}

/// A tone over pink noise (harder for the encoder than a pure tone), stereo 44.1 kHz MP3.
fn generate(out: &Path, secs: u32, kbps: u32) {
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:duration={secs}:sample_rate=44100"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("anoisesrc=d={secs}:c=pink:a=0.2:r=44100:seed=42"))
        .args([
            "-filter_complex",
            "amix=inputs=2,aformat=channel_layouts=stereo",
        ])
        .args(["-c:a", "libmp3lame", "-b:a", &format!("{kbps}k")])
        .arg(out)
        .status()
        .expect("ffmpeg on PATH");
    assert!(st.success(), "generating {out:?}: {st}");
}

async fn package(input: &Path, work: &Path) -> Packaged {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    hls::package(
        input,
        work,
        &options(),
        None,
        &|_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

async fn local_store(root: &Path) -> BlobStore {
    BlobStore::open(&config(StorageBackend::Local, root, "http://unused"))
        .await
        .unwrap()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_s3s(root: &Path) -> (Killed, String) {
    std::fs::create_dir_all(root.join("bench")).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "AKBENCH", "--secret-key", "SKBENCH"])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs on PATH (cargo install s3s-fs --features binary)");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `RUNS` cold uploads (a fresh prefix each) and one warm re-upload; prints segments/s.
async fn upload_rate(what: &str, store: &BlobStore, p: &Packaged) {
    let blobs = p
        .files
        .iter()
        .filter(|f| matches!(f.kind, FileKind::Init | FileKind::Segment))
        .count();
    let mut cold = Vec::new();
    for i in 0..RUNS {
        let t = Instant::now();
        let r = hls::upload(store, &format!("tracks/run{i}/hls"), p)
            .await
            .unwrap();
        cold.push(t.elapsed().as_secs_f64());
        assert_eq!(r.uploaded, p.files.len());
    }
    let t = Instant::now();
    let r = hls::upload(store, "tracks/run0/hls", p).await.unwrap();
    let warm = t.elapsed().as_secs_f64();
    assert_eq!(r.uploaded, 0);
    let cold = median(cold);
    println!(
        "upload to {what:<6} {} files ({blobs} segments+inits): cold {:>7.1} ms = {:>6.0} segments/s; \
         re-upload (all skipped) {:>6.1} ms",
        p.files.len(),
        cold * 1e3,
        blobs as f64 / cold,
        warm * 1e3,
    );
}

async fn upload_rates(input: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let p = package(input, &tmp.path().join("work")).await;
    let local = local_store(&tmp.path().join("store")).await;
    upload_rate("local", &local, &p).await;
    let (_s3s, endpoint) = start_s3s(&tmp.path().join("s3"));
    let s3 = BlobStore::open(&config(StorageBackend::S3, tmp.path(), &endpoint))
        .await
        .unwrap();
    upload_rate("s3", &s3, &p).await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arg = |i: usize| PathBuf::from(args.get(i).expect("missing argument; see benches/hls.rs"));
    match args.first().map(String::as_str) {
        Some("args") => {
            let input = std::path::absolute(arg(1)).unwrap();
            for a in hls::ffmpeg_args(&input, &options()) {
                println!("{}", a.to_str().expect("UTF-8 arguments"));
            }
        }
        Some("package") => rt.block_on(async {
            let (input, dir) = (arg(1), arg(2));
            let p = package(&input, &dir.join("work")).await;
            let store = local_store(&dir.join("store")).await;
            let r = hls::upload(&store, "tracks/bench/hls", &p).await.unwrap();
            eprintln!("{} files, {r:?}", p.files.len());
        }),
        Some("upload-rate") => rt.block_on(upload_rates(&arg(1))),
        Some(other) => panic!("unknown mode {other:?}; see benches/hls.rs"),
        None if full => {
            let tmp = tempfile::tempdir().unwrap();
            let input = tmp.path().join("5min-320k.mp3");
            generate(&input, 300, 320);
            rt.block_on(upload_rates(&input));
        }
        None => rt.block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let input = tmp.path().join("tone.mp3");
            generate(&input, 5, 320);
            let p = package(&input, &tmp.path().join("work")).await;
            let store = local_store(&tmp.path().join("store")).await;
            let first = hls::upload(&store, "tracks/smoke/hls", &p).await.unwrap();
            assert_eq!(first.uploaded, p.files.len());
            let again = hls::upload(&store, "tracks/smoke/hls", &p).await.unwrap();
            assert_eq!(again.uploaded, 0);
            println!("hls bench smoke test: ok ({} files)", p.files.len());
        }),
    }
}
