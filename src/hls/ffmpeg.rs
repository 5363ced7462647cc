//! Running ffmpeg: found or not, niced, watched (progress on stdout, the tail of stderr),
//! bounded in time and cancellable. A killed or dropped run never leaves ffmpeg behind
//! (`kill_on_drop`).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::HlsError;

/// How much lower than Veza's own CPU priority ffmpeg runs: packaging is background work and
/// must not slow the origin's requests.
pub(crate) const NICE: i32 = 10;
/// Bytes of stderr kept for the error.
const STDERR_TAIL: usize = 2048;
/// `ffmpeg -version` answers at once; a hung one is as good as missing.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether ffmpeg can run: `{ffmpeg} -version`'s first line, or why not, in words fit for the
/// dashboard ("ffmpeg not found: program \"ffmpeg\" is not on PATH").
pub async fn detect_ffmpeg(ffmpeg: &str) -> Result<String, HlsError> {
    let mut cmd = Command::new(program_path(ffmpeg));
    cmd.arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            HlsError::FfmpegMissing(format!(
                "ffmpeg unusable: {ffmpeg:?} -version did not answer within {VERSION_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| missing(ffmpeg, &e))?;
    if !out.status.success() {
        return Err(HlsError::FfmpegMissing(format!(
            "ffmpeg unusable: {ffmpeg:?} -version ended with {}: {}",
            out.status,
            tail_text(&out.stderr, 300)
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("").trim();
    if !first.starts_with("ffmpeg version") {
        return Err(HlsError::FfmpegMissing(format!(
            "ffmpeg unusable: {ffmpeg:?} does not look like ffmpeg (-version printed {:?})",
            first.chars().take(120).collect::<String>()
        )));
    }
    Ok(first.to_owned())
}

/// `FfmpegMissing` for a spawn error, in words.
fn missing(program: &str, e: &io::Error) -> HlsError {
    HlsError::FfmpegMissing(match e.kind() {
        io::ErrorKind::NotFound if !program.contains('/') => {
            format!("ffmpeg not found: program {program:?} is not on PATH")
        }
        io::ErrorKind::NotFound => format!("ffmpeg not found: program {program:?} does not exist"),
        io::ErrorKind::PermissionDenied => {
            format!("ffmpeg unusable: program {program:?} is not executable")
        }
        _ => format!("ffmpeg unusable: cannot run {program:?}: {e}"),
    })
}

/// A relative path with a `/` is taken from Veza's current directory, not the work dir ffmpeg
/// runs in (std leaves that case platform-specific); a bare name is looked up on PATH.
fn program_path(program: &str) -> PathBuf {
    let p = Path::new(program);
    if program.contains('/') && p.is_relative() {
        std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
    } else {
        p.to_owned()
    }
}

/// One ffmpeg run in a work dir.
pub(crate) struct Run<'a> {
    pub(crate) program: &'a str,
    pub(crate) args: &'a [OsString],
    pub(crate) work_dir: &'a Path,
    pub(crate) timeout: Duration,
    pub(crate) duration_hint: Option<Duration>,
}

enum Outcome {
    Exited(io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
}

impl Run<'_> {
    /// Runs ffmpeg to the end, the time limit or the cancel token, whichever comes first.
    pub(crate) async fn run(
        &self,
        progress: &(dyn Fn(f64) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<(), HlsError> {
        if cancel.is_cancelled() {
            return Err(HlsError::Cancelled);
        }
        let mut cmd = Command::new(program_path(self.program));
        cmd.args(self.args)
            // Relative outputs land in the work dir, and so would anything else ffmpeg writes.
            .current_dir(self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = spawn_niced(&mut cmd).map_err(|e| missing(self.program, &e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = tokio::spawn(read_tail(stderr));
        let outcome = {
            let exited = async {
                let (_, status) = tokio::join!(
                    report_progress(stdout, self.duration_hint, progress),
                    child.wait()
                );
                status
            };
            tokio::select! {
                status = exited => Outcome::Exited(status),
                () = cancel.cancelled() => Outcome::Cancelled,
                () = tokio::time::sleep(self.timeout) => Outcome::TimedOut,
            }
        };
        let err = match outcome {
            Outcome::Exited(Ok(status)) if status.success() => return Ok(()),
            Outcome::Exited(Ok(status)) => {
                let stderr_tail = tail.await.unwrap_or_default();
                return Err(HlsError::Ffmpeg {
                    status: status.to_string(),
                    stderr_tail,
                });
            }
            Outcome::Exited(Err(e)) => {
                return Err(HlsError::Io {
                    op: "wait for",
                    path: self.program.to_owned(),
                    source: e,
                });
            }
            Outcome::Cancelled => HlsError::Cancelled,
            Outcome::TimedOut => HlsError::Timeout(self.timeout),
        };
        // Kill and reap before returning, so the caller may remove the work dir at once.
        let _ = child.kill().await;
        tail.abort();
        Err(err)
    }
}

/// Starts `cmd` with its CPU priority [`NICE`] steps below ours.
///
/// Linux keeps a nice value per thread, and a child inherits the value of the thread that
/// forked it. So a short-lived thread lowers its own priority, then spawns: ffmpeg is niced
/// from its first instruction (renicing it after spawn would race with the threads it starts),
/// and no thread of Veza's runtime is ever lowered. rustix gives safe `setpriority`/`gettid`
/// (lib.rs forbids `unsafe`, so no `pre_exec`); `nice -n 10 ffmpeg` would work too but turns a
/// missing ffmpeg into nice's exit status 127 instead of a clear spawn error.
#[cfg(target_os = "linux")]
fn spawn_niced(cmd: &mut Command) -> io::Result<Child> {
    let rt = tokio::runtime::Handle::current();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _rt = rt.enter(); // tokio's child reaper registers with the runtime
            lower_this_thread();
            cmd.spawn()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the spawning thread panicked")))
    })
}

/// Elsewhere ffmpeg runs at Veza's own priority: without a per-thread nice value, lowering
/// the spawning thread would lower the whole server.
#[cfg(not(target_os = "linux"))]
fn spawn_niced(cmd: &mut Command) -> io::Result<Child> {
    cmd.spawn()
}

#[cfg(target_os = "linux")]
fn lower_this_thread() {
    use rustix::process::{getpriority_process, setpriority_process};
    // PRIO_PROCESS with a thread id addresses that one thread on Linux.
    let me = Some(rustix::thread::gettid());
    let now = getpriority_process(me).unwrap_or(0);
    if let Err(e) = setpriority_process(me, (now + NICE).min(19)) {
        tracing::debug!(error = %e, "cannot lower ffmpeg's CPU priority; it runs at ours");
    }
}

/// Reads `-progress pipe:1` (blocks of `key=value` lines) to its end, reporting
/// `out_time / duration_hint` whenever it grows.
async fn report_progress(
    stdout: impl AsyncRead + Unpin,
    duration_hint: Option<Duration>,
    progress: &(dyn Fn(f64) + Send + Sync),
) {
    let total = duration_hint.map(|d| d.as_secs_f64()).filter(|d| *d > 0.0);
    let mut last = 0.0_f64;
    let mut lines = BufReader::new(stdout).lines();
    // Read to the end even without a hint: a full pipe would stall ffmpeg.
    while let Ok(Some(line)) = lines.next_line().await {
        let (Some(total), Some(t)) = (total, out_time_secs(&line)) else {
            continue;
        };
        let f = (t / total).clamp(0.0, 1.0);
        if f > last {
            last = f;
            progress(f);
        }
    }
}

/// Seconds of output written, from an `out_time_us=` or `out_time_ms=` line. Both count
/// microseconds: `out_time_ms` has been misnamed for years and older builds only print it.
fn out_time_secs(line: &str) -> Option<f64> {
    let (key, value) = line.split_once('=')?;
    match key.trim() {
        "out_time_us" | "out_time_ms" => {
            let us: i64 = value.trim().parse().ok()?; // "N/A" before the first packet
            (us >= 0).then(|| us as f64 / 1e6)
        }
        _ => None,
    }
}

/// The last [`STDERR_TAIL`] bytes of a stream, as text.
async fn read_tail(mut r: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    tail_text(&kept, STDERR_TAIL)
}

/// At most the last `max` bytes of `bytes`, from a line start when it had to cut, trimmed.
fn tail_text(bytes: &[u8], max: usize) -> String {
    let cut = bytes.len().saturating_sub(max);
    let mut tail = &bytes[cut..];
    if cut > 0
        && let Some(nl) = tail.iter().position(|b| *b == b'\n')
    {
        tail = &tail[nl + 1..];
    }
    String::from_utf8_lossy(tail).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_time_is_read_in_microseconds_from_either_key() {
        assert_eq!(out_time_secs("out_time_us=1500000"), Some(1.5));
        assert_eq!(out_time_secs("out_time_ms=30000181"), Some(30.000181));
        assert_eq!(out_time_secs("out_time_us=N/A"), None);
        assert_eq!(out_time_secs("out_time_us=-23220"), None);
        assert_eq!(out_time_secs("out_time=00:00:01.500000"), None);
        assert_eq!(out_time_secs("progress=end"), None);
    }

    #[tokio::test]
    async fn progress_only_grows_and_stops_at_one() {
        let feed = b"out_time_us=N/A\nout_time_us=2000000\nout_time_ms=2000000\n\
                     out_time_us=1000000\nout_time_us=4000000\nout_time_us=9000000\nprogress=end\n";
        let seen = std::sync::Mutex::new(Vec::new());
        let record = |f: f64| seen.lock().unwrap().push(f);
        report_progress(&feed[..], Some(Duration::from_secs(4)), &record).await;
        assert_eq!(*seen.lock().unwrap(), [0.5, 1.0]);
        report_progress(&feed[..], None, &|_| panic!("no hint, no progress")).await;
    }

    #[test]
    fn the_tail_keeps_whole_lines_at_the_end() {
        let text = format!("{}\nlast line\n", "x".repeat(50));
        assert_eq!(tail_text(text.as_bytes(), 20), "last line");
        assert_eq!(tail_text(b"  short\n", 20), "short");
    }

    #[tokio::test]
    async fn a_missing_program_is_named_in_words() {
        let e = detect_ffmpeg("veza-no-such-ffmpeg").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "ffmpeg not found: program \"veza-no-such-ffmpeg\" is not on PATH"
        );
        let e = detect_ffmpeg("/nonexistent/ffmpeg").await.unwrap_err();
        assert!(matches!(&e, HlsError::FfmpegMissing(m) if m.contains("does not exist")));
        // Runs, but is not ffmpeg.
        let e = detect_ffmpeg("true").await.unwrap_err();
        assert!(matches!(&e, HlsError::FfmpegMissing(m) if m.contains("does not look like")));
    }

    #[tokio::test]
    async fn the_installed_ffmpeg_is_detected() {
        let v = detect_ffmpeg("ffmpeg").await.unwrap();
        assert!(v.starts_with("ffmpeg version"), "{v}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn children_run_niced_and_the_caller_keeps_its_priority() {
        use rustix::process::getpriority_process;
        let before = getpriority_process(None).unwrap();
        // coreutils `nice` without arguments prints its own niceness.
        let mut cmd = Command::new("nice");
        cmd.stdout(Stdio::piped());
        let out = spawn_niced(&mut cmd)
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        let child: i32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(child, (before + NICE).min(19));
        assert_eq!(getpriority_process(None).unwrap(), before);
    }
}
