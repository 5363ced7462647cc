//! Running ffmpeg: found or not, niced, watched (progress on stdout, the tail of stderr),
//! bounded in time, CPU and output, and cancellable. A killed or dropped run never leaves
//! ffmpeg behind (`kill_on_drop`).
//!
//! The input is an editor's upload, so ffmpeg opens it with audio demuxers only
//! ([`AUDIO_DEMUXERS`]) and reads local files only: an uploaded playlist is refused rather
//! than followed to URLs or to other files on the host (issue #16).

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

/// The demuxers ffmpeg and ffprobe may open user content with (`-format_whitelist`): audio
/// containers only. No hls, dash, concat, image2, sdp, asf (redirects) or any playlist format,
/// which would make them fetch URLs or open other local files. The list is matched name by
/// name; the mov demuxer answers to every name in `mov,mp4,m4a,3gp,3g2,mj2`, matroska to
/// `matroska,webm`.
pub const AUDIO_DEMUXERS: &str =
    "mp3,flac,ogg,mov,mp4,m4a,3gp,3g2,mj2,wav,aiff,aac,w64,caf,wv,ape,tta,dsf,matroska,webm";

/// How often the work dir is measured while ffmpeg runs.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Output allowed whatever the duration: playlists, init segments, a short track's segments.
const OUTPUT_BASE: u64 = 32 * 1024 * 1024;
/// Longest audio a budget is ever computed for (the limits do not grow past a day).
const MAX_BUDGET_SECS: u64 = 24 * 3600;
/// The input's duration if it were a 32 kbps stream: a floor for the budget, as a probed
/// duration can be far too short (lofty estimates a VBR MP3 without a Xing header from its
/// first frame's bitrate).
const FLOOR_BYTES_PER_SEC: u64 = 32_000 / 8;
/// CPU time ffmpeg may use before its CPU limit, on top of the per-audio-second allowance.
const CPU_BASE_SECS: u64 = 60;

/// Resource bounds of one ffmpeg run, on top of its wall-clock timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// CPU seconds, all threads together (`RLIMIT_CPU`, soft = hard, so the kernel kills it).
    pub(crate) cpu_secs: u64,
    /// Bytes the work dir may hold, measured every [`WATCH_EVERY`] and after the run; also
    /// the largest single file ffmpeg may write (`RLIMIT_FSIZE`).
    pub(crate) output_bytes: u64,
}

impl Limits {
    /// Bounds for packaging `input_bytes` of audio probed as `duration_hint` into `rungs`
    /// (kbps) within `timeout`.
    ///
    /// The audio budget is the longer of the probed duration and the input's duration at
    /// 32 kbps, capped at a day: longer than the real audio of any source at 32 kbps or more,
    /// however wrong its probed duration. Then:
    /// - output: twice what the rungs' bitrates give for the budget (fMP4 overhead is a few
    ///   per cent; the encoder may overshoot), plus [`OUTPUT_BASE`];
    /// - CPU: a quarter second per second of budget per rung (packaging here takes about
    ///   1/60 s, see docs/BENCHMARKS.md, so 15× headroom for slower machines and costlier
    ///   decoders), plus [`CPU_BASE_SECS`], never more than the timeout.
    pub(crate) fn for_package(
        rungs: &[u32],
        duration_hint: Option<Duration>,
        input_bytes: u64,
        timeout: Duration,
    ) -> Limits {
        let probed = duration_hint.map_or(0, |d| d.as_secs() + 1);
        let budget = probed
            .max(input_bytes / FLOOR_BYTES_PER_SEC)
            .min(MAX_BUDGET_SECS);
        let bytes_per_sec: u64 = rungs.iter().map(|k| u64::from(*k) * 1000 / 8).sum();
        let cpu = CPU_BASE_SECS + budget * rungs.len() as u64 / 4;
        Limits {
            cpu_secs: cpu.min(timeout.as_secs().max(1)),
            output_bytes: OUTPUT_BASE + 2 * bytes_per_sec * budget,
        }
    }
}

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
    pub(crate) limits: Limits,
}

enum Outcome {
    Exited(io::Result<ExitStatus>),
    Cancelled,
    TimedOut,
    TooMuchOutput(u64),
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
        // Right after spawn: ffmpeg has only had time to parse its arguments.
        limit_child(&child, &self.limits);
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
                bytes = watch_output(self.work_dir, self.limits.output_bytes) => {
                    Outcome::TooMuchOutput(bytes)
                }
            }
        };
        let err = match outcome {
            Outcome::Exited(Ok(status)) if status.success() => {
                return check_output(self.work_dir, self.limits.output_bytes).await;
            }
            Outcome::Exited(Ok(status)) => {
                if let Some(over) = over_limit(status, &self.limits) {
                    tail.abort();
                    return Err(over);
                }
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
            Outcome::TooMuchOutput(bytes) => output_over(bytes, self.limits.output_bytes),
        };
        // Kill and reap before returning, so the caller may remove the work dir at once.
        let _ = child.kill().await;
        tail.abort();
        Err(err)
    }
}

/// Lowers the child's CPU-time, file-size and core-dump limits. Linux only; elsewhere the
/// timeout and the work-dir watch still bound it.
#[cfg(target_os = "linux")]
fn limit_child(child: &Child, limits: &Limits) {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let Some(pid) = child.id().and_then(|id| Pid::from_raw(id as i32)) else {
        return;
    };
    let both = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    // Soft = hard: the kernel sends SIGKILL at the limit. (With a lower soft limit it would
    // send SIGXCPU, which ffmpeg takes as a polite stop request and exits 255.) No core
    // files: SIGXFSZ would otherwise dump one into the work dir.
    for (resource, value) in [
        (Resource::Cpu, limits.cpu_secs),
        (Resource::Fsize, limits.output_bytes),
        (Resource::Core, 0),
    ] {
        if let Err(e) = prlimit(Some(pid), resource, both(value)) {
            tracing::warn!(error = %e, ?resource, value, "cannot limit ffmpeg");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn limit_child(_child: &Child, _limits: &Limits) {}

/// The limit a run that ended with `status` went over, if that is why it ended: SIGXFSZ is a
/// file over `RLIMIT_FSIZE`; SIGKILL, which Veza only sends after deciding the outcome
/// itself, comes from the kernel at `RLIMIT_CPU` (or from the OOM killer).
#[cfg(unix)]
fn over_limit(status: ExitStatus, limits: &Limits) -> Option<HlsError> {
    use std::os::unix::process::ExitStatusExt;
    const SIGKILL: i32 = 9;
    const SIGXFSZ: i32 = 25;
    match status.signal()? {
        SIGXFSZ => Some(HlsError::OverLimit(format!(
            "it wrote a file past the output limit of {} bytes",
            limits.output_bytes
        ))),
        SIGKILL => Some(HlsError::OverLimit(format!(
            "it reached its CPU time limit of {} s (or the system ran out of memory)",
            limits.cpu_secs
        ))),
        _ => None,
    }
}

#[cfg(not(unix))]
fn over_limit(_status: ExitStatus, _limits: &Limits) -> Option<HlsError> {
    None
}

fn output_over(bytes: u64, limit: u64) -> HlsError {
    HlsError::OverLimit(format!(
        "its output reached {bytes} bytes, over the limit of {limit} bytes"
    ))
}

/// Resolves once the work dir holds more than `limit` bytes, with what it held.
async fn watch_output(dir: &Path, limit: u64) -> u64 {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        if let Ok(bytes) = dir_bytes(dir).await
            && bytes > limit
        {
            return bytes;
        }
    }
}

/// The output-size check after a successful run.
pub(crate) async fn check_output(dir: &Path, limit: u64) -> Result<(), HlsError> {
    let bytes = dir_bytes(dir)
        .await
        .map_err(super::io_err("measure", dir))?;
    if bytes > limit {
        return Err(output_over(bytes, limit));
    }
    Ok(())
}

/// Bytes in the regular files under `dir`.
async fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut total = 0u64;
        for entry in walkdir::WalkDir::new(&dir) {
            let entry = entry.map_err(io::Error::other)?;
            if entry.file_type().is_file() {
                total += entry.metadata().map_err(io::Error::other)?.len();
            }
        }
        Ok(total)
    })
    .await
    .map_err(io::Error::other)?
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

    #[test]
    fn limits_follow_the_audio_budget_and_stop_growing_after_a_day() {
        let timeout = Duration::from_secs(1800);
        // 5 min of a 128 kbps MP3 (4.8 MB): the size floor (1200 s at 32 kbps) wins.
        let l = Limits::for_package(
            &[64, 128],
            Some(Duration::from_secs(300)),
            4_800_000,
            timeout,
        );
        assert_eq!(l.output_bytes, OUTPUT_BASE + 2 * 24_000 * 1200);
        assert_eq!(l.cpu_secs, 60 + 1200 * 2 / 4);
        // A FLAC of honest silence: tiny, long; the probed duration wins.
        let l = Limits::for_package(&[64], Some(Duration::from_secs(3599)), 1000, timeout);
        assert_eq!(l.output_bytes, OUTPUT_BASE + 2 * 8_000 * 3600);
        assert_eq!(l.cpu_secs, 960);
        // A claimed week counts as a day, and CPU never exceeds the timeout.
        let week = Some(Duration::from_secs(7 * 86_400));
        let l = Limits::for_package(&[64, 128, 256], week, 1000, timeout);
        assert_eq!(l.output_bytes, OUTPUT_BASE + 2 * 56_000 * 86_400);
        assert_eq!(l.cpu_secs, 1800);
    }

    /// An executable shell script standing in for ffmpeg.
    fn fake(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-ffmpeg");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Runs `program` in `work` with `limits` (retrying "text file busy": another test thread
    /// may fork while this one still has the script open for writing).
    async fn run_with(program: &Path, work: &Path, limits: Limits) -> Result<(), HlsError> {
        loop {
            let run = Run {
                program: program.to_str().unwrap(),
                args: &[],
                work_dir: work,
                timeout: Duration::from_secs(30),
                duration_hint: None,
                limits,
            };
            match run.run(&|_| {}, &CancellationToken::new()).await {
                Err(HlsError::FfmpegMissing(m)) if m.contains("busy") => continue,
                other => return other,
            }
        }
    }

    #[tokio::test]
    async fn a_work_dir_over_the_output_limit_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("seg")).unwrap();
        std::fs::write(tmp.path().join("a.m4s"), vec![0u8; 600]).unwrap();
        std::fs::write(tmp.path().join("seg/b.m4s"), vec![0u8; 500]).unwrap();
        check_output(tmp.path(), 1100).await.unwrap();
        let e = check_output(tmp.path(), 1099).await.unwrap_err();
        assert!(
            matches!(&e, HlsError::OverLimit(m) if m.contains("1100 bytes")),
            "{e}"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn ffmpeg_is_stopped_at_its_output_and_cpu_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = |name: &str| {
            let w = tmp.path().join(name);
            std::fs::create_dir_all(&w).unwrap();
            w
        };
        let limits = Limits {
            cpu_secs: 1,
            output_bytes: 100_000,
        };
        let started = std::time::Instant::now();
        // One file past RLIMIT_FSIZE: the kernel stops the write.
        let work = fresh("one-big");
        // The limits land just after spawn; the script waits for them (ffmpeg itself takes
        // far longer than that to get to its first write).
        let one_big = fake(
            tmp.path(),
            "while [ \"$(ulimit -f)\" = unlimited ]; do :; done\nexec head -c 1000000 /dev/zero > big",
        );
        let e = run_with(&one_big, &work, limits).await.unwrap_err();
        assert!(
            matches!(&e, HlsError::OverLimit(m) if m.contains("a file past")),
            "{e}"
        );
        assert_eq!(std::fs::metadata(work.join("big")).unwrap().len(), 100_000);
        assert!(!work.join("core").exists(), "no core dump in the work dir");
        // Many files each under it, over it together, then exiting at once: the check after
        // the run.
        let many = fake(
            tmp.path(),
            "for i in 1 2 3 4 5 6; do head -c 30000 /dev/zero > f$i; done",
        );
        let e = run_with(&many, &fresh("many"), limits).await.unwrap_err();
        assert!(
            matches!(&e, HlsError::OverLimit(m) if m.contains("reached 180000 bytes")),
            "{e}"
        );
        // The same, still running: the watch kills it.
        let many_then_wait = fake(
            tmp.path(),
            "for i in 1 2 3 4 5 6; do head -c 30000 /dev/zero > g$i; done\nexec sleep 60",
        );
        let e = run_with(&many_then_wait, &fresh("many-then-wait"), limits)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, HlsError::OverLimit(m) if m.contains("output reached")),
            "{e}"
        );
        // Spinning past RLIMIT_CPU.
        let spin = fake(tmp.path(), "while :; do :; done");
        let e = run_with(&spin, &fresh("spin"), limits).await.unwrap_err();
        assert!(
            matches!(&e, HlsError::OverLimit(m) if m.contains("CPU time limit of 1 s")),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn packaging_refuses_a_playlist_that_names_a_local_file() {
        let tmp = tempfile::tempdir().unwrap();
        let tone = tmp.path().join("secret.mp3");
        let made = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
            .args(["sine=duration=2", "-c:a", "libmp3lame"])
            .arg(&tone)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let evil = tmp.path().join("original.mp3");
        std::fs::write(
            &evil,
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{}\n#EXT-X-ENDLIST\n",
                tone.display()
            ),
        )
        .unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let opts = crate::hls::Options {
            ffmpeg: "ffmpeg".into(),
            rungs: vec![64],
            segment_secs: 6,
            timeout: Duration::from_secs(60),
            gain_db: None,
            source: Default::default(),
        };
        let r = crate::hls::package(
            &evil,
            &work,
            &opts,
            None,
            &|_| {},
            &CancellationToken::new(),
        )
        .await;
        match r {
            Err(HlsError::Ffmpeg { stderr_tail, .. }) => {
                assert!(stderr_tail.contains("not on whitelist"), "{stderr_tail}")
            }
            other => panic!("a playlist was packaged: {other:?}"),
        }
        let written: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().collect();
        assert!(
            written
                .iter()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".m4s")),
            "{written:?}"
        );
    }
}
