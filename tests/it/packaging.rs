//! What the systemd unit relies on, with the real binary: the `Type=notify` messages
//! (READY=1 after bind, watchdog pings, STOPPING=1 on SIGTERM) on a real notify socket, and
//! the unit file itself through `systemd-analyze` (verify, and the security exposure score).
//! The .deb itself is built and installed into a Debian root by `packaging/test-deb`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{require_tool, stderr, stdout};

/// Messages on the socket until `want` arrives (panics after `secs`).
fn wait_for(sock: &UnixDatagram, want: &str, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
    panic!("no {want} within {secs} s; got {seen:?}")
}

#[test]
fn serve_notifies_ready_pings_the_watchdog_and_says_stopping_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let data = tmp.path().join("data");
    // systemd sets WATCHDOG_PID to the main pid; `exec` keeps the shell's pid for veza.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$ exec "$0" serve"#)
        .arg(env!("CARGO_BIN_EXE_veza"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("VEZA_DATA_DIR", &data)
        .env("VEZA_SERVER__LISTEN", "127.0.0.1:0")
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_for(&sock, "READY=1", 60);
    assert!(
        data.join("veza.db").is_file(),
        "READY before the database existed"
    );
    // Pings every 200 ms (half of WATCHDOG_USEC): several within a second.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        wait_for(&sock, "WATCHDOG=1", 2);
        pings += 1;
    }
    assert!(pings >= 3, "{pings} watchdog pings in 1.2 s");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait_for(&sock, "STOPPING=1", 30);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}; earlier messages {ready:?}");
}

fn unit() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/veza.service"
    ))
}

#[test]
fn the_unit_verifies_and_rates_at_most_2_0_in_systemd_analyze_security() {
    let analyze = require_tool("systemd-analyze");
    // verify resolves ExecStart and the man page against a root: give it the installed
    // layout (the binary under test as /usr/bin/veza) in a throwaway one.
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    std::fs::copy(unit(), units.join("veza.service")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_veza"), root.path().join("usr/bin/veza")).unwrap();
    // The targets the unit orders itself after, as the host's systemd ships them.
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    let cp = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(root.path().join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(cp.success());
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.path().display()))
        .arg(units.join("veza.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && stderr(&out).trim().is_empty(),
        "systemd-analyze verify: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit())
        .output()
        .unwrap();
    let text = stdout(&out);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for veza.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in: {text}{}", stderr(&out)));
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

/// The release binary `.ci/first-run` built (kept in target/first-run), else target/release's.
fn release_target_dir() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["target/first-run", "target"] {
        if root.join(dir).join("release/veza").is_file() {
            return root.join(dir);
        }
    }
    panic!(
        "no release binary: the package test packs the one ./.ci/first-run builds \
         (or `cargo build --release`); ./.ci/test runs first-run before the tests"
    )
}

#[test]
fn the_deb_passes_lintian_and_installs_upgrades_and_purges_in_a_debian_root() {
    for tool in ["cargo-deb", "lintian", "debootstrap", "dpkg-deb", "setpriv"] {
        require_tool(tool);
    }
    let started = Instant::now();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/test-deb"))
        .env("CARGO_TARGET_DIR", release_target_dir())
        .output()
        .unwrap();
    eprintln!(
        "packaging/test-deb took {:?}:\n{}{}",
        started.elapsed(),
        stdout(&out),
        stderr(&out)
    );
    assert!(out.status.success(), "packaging/test-deb failed");
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("PASS "))
            .count(),
        6,
        "{}",
        stdout(&out)
    );
}

/// Runs `argv` with the kernel's memory-deny-write-execute (PR_SET_MDWE, Linux 6.3+; the
/// same W^X rule the unit's `MemoryDenyWriteExecute=yes` applies through seccomp), after
/// proving the rule is in force: a writable and executable mapping must be refused.
const UNDER_MDWE: &str = r#"
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("a W+X mapping was allowed: MDWE is not in force")
except OSError:
    pass
os.execvp(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn ffmpeg_packages_hls_under_memory_deny_write_execute() {
    let ffmpeg = require_tool("ffmpeg");
    let python = require_tool("python3");
    let tmp = tempfile::tempdir().unwrap();
    // What hls::package asks of ffmpeg: decode, AAC-LC encode, fMP4 HLS segments.
    let out = Command::new(python)
        .args(["-c", UNDER_MDWE])
        .arg(ffmpeg)
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=4",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2"])
        .args(["-hls_segment_type", "fmp4", "-hls_playlist_type", "vod"])
        .arg(tmp.path().join("a.m3u8"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let playlist = std::fs::read_to_string(tmp.path().join("a.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(tmp.path().join("init.mp4").is_file());
}
