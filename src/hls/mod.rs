//! HLS packaging: one ffmpeg run turns an original into an AAC-LC ladder of fMP4 renditions,
//! then every init and media segment is renamed to its SHA-256 and the playlists are rewritten
//! to those names (spec §6). No database and no queue here: the job runner calls [`package`]
//! into a temp dir it owns, then [`upload`] under the track's prefix.
//!
//! Object layout under the prefix (the origin endpoint relies on it): `master.m3u8`, one media
//! playlist per rung (`128k.m3u8`), init segments `seg/{sha256}.mp4`, media segments
//! `seg/{sha256}.m4s`, and per rung the same encode as one progressive file `seg/{sha256}.m4a`
//! (ffmpeg's `tee` muxer writes both from one encoder, so it costs no second encode). Playlists hold relative URIs only, so one signed directory token covers
//! the whole tree.
//!
//! Content-addressed names only work if ffmpeg is deterministic: the same input must give the
//! same bytes, so the command asks for bit-exact codecs and muxers and drops all metadata (a
//! test packages twice and compares).

pub mod analysis;
mod ffmpeg;
mod meter;
mod playlist;
mod upload;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::HlsConfig;
use crate::storage::StoreError;

pub use analysis::{Analysis, Gapless, Measured};
pub use ffmpeg::{AUDIO_DEMUXERS, detect_ffmpeg};
pub use upload::{UploadReport, upload};

/// `CODECS` of every rendition: AAC-LC (ffmpeg's native encoder never makes HE-AAC).
pub const CODECS: &str = "mp4a.40.2";
/// Name of the master playlist under the prefix.
pub const MASTER: &str = "master.m3u8";
/// Folder of init and media segments under the prefix.
pub const SEGMENT_DIR: &str = "seg";

/// Why packaging or uploading failed.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// ffmpeg cannot be run at all (not installed, not executable, not ffmpeg).
    #[error("{0}")]
    FfmpegMissing(String),
    /// ffmpeg ran and failed (corrupt or unsupported input, disk full…).
    #[error("ffmpeg failed ({status}): {stderr_tail}")]
    Ffmpeg {
        /// How it ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
        status: String,
        /// The last ~2 KB of its stderr (errors only: it runs with `-loglevel error`).
        stderr_tail: String,
    },
    /// ffmpeg ran past the time limit and was killed.
    #[error("ffmpeg ran longer than {0:?} and was killed")]
    Timeout(Duration),
    /// ffmpeg went over a resource limit (CPU time, output size) and was stopped.
    #[error("ffmpeg was stopped: {0}")]
    OverLimit(String),
    /// The cancel token fired; ffmpeg was killed.
    #[error("packaging was cancelled")]
    Cancelled,
    /// A filesystem operation in the work dir failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The blob store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// ffmpeg wrote a playlist we cannot use, or one of ours failed to write.
    #[error("playlist: {0}")]
    Playlist(String),
    /// [`Options`] that cannot work (no rung, zero segment length…).
    #[error("invalid options: {0}")]
    Options(String),
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HlsError {
    let path = path.display().to_string();
    move |source| HlsError::Io { op, path, source }
}

/// The rungs worth making for a source of `source_kbps`: every ladder rung at or below it,
/// and at least the lowest rung; an unknown bitrate gets them all. `ladder` is ascending, as
/// `HlsConfig::ladder_kbps` is. (Lossless sources are far above any rung, so they get all.)
pub fn pick_rungs(ladder: &[u32], source_kbps: Option<u32>) -> Vec<u32> {
    let Some(source) = source_kbps else {
        return ladder.to_vec();
    };
    let fit: Vec<u32> = ladder.iter().copied().filter(|&k| k <= source).collect();
    if fit.is_empty() {
        ladder.iter().copied().min().into_iter().collect()
    } else {
        fit
    }
}

/// How to package.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// ffmpeg program: a name on PATH or a path.
    pub ffmpeg: String,
    /// AAC bitrates to make, kbps, strictly ascending (see [`pick_rungs`]).
    pub rungs: Vec<u32>,
    /// Target segment length in seconds.
    pub segment_secs: u32,
    /// Longest the ffmpeg run may take.
    pub timeout: Duration,
    /// Gain applied to the renditions (`hls.normalize`), dB; the analysis measures the
    /// audio before it.
    pub gain_db: Option<f64>,
    /// What the probe said about the source.
    pub source: Source,
}

/// What the probe said about a source: pins the decoded format before it is split (ffmpeg 5.1
/// cannot negotiate a conversion behind a split whose rate or layout is still a list), and
/// sizes the waveform blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Source {
    /// Sample rate, Hz.
    pub sample_rate: Option<u32>,
    /// Channel count.
    pub channels: Option<u8>,
    /// Duration.
    pub duration: Option<Duration>,
}

impl Source {
    /// The renditions' rate for this source: its own when AAC players take it everywhere,
    /// else the nearest such rate (as `aformat` picks).
    fn output_rate(rate: u32) -> u32 {
        SAMPLE_RATES
            .split('|')
            .filter_map(|r| r.parse::<u32>().ok())
            .min_by_key(|r| (r.abs_diff(rate), std::cmp::Reverse(*r)))
            .unwrap_or(48_000)
    }

    /// The `aformat` that converts the decoded audio once, for every branch.
    fn aformat(&self) -> String {
        let rates = match self.sample_rate {
            Some(r) => Source::output_rate(r).to_string(),
            None => SAMPLE_RATES.to_owned(),
        };
        // Unknown: stereo, so the PCM reader knows what it reads.
        let layouts = if self.channels == Some(1) {
            "mono"
        } else {
            "stereo"
        };
        format!("aformat=sample_rates={rates}:channel_layouts={layouts}")
    }
}

impl Options {
    /// Options from `[hls]` for the given rungs.
    pub fn from_config(cfg: &HlsConfig, rungs: Vec<u32>) -> Options {
        Options {
            ffmpeg: cfg.ffmpeg.clone(),
            rungs,
            segment_secs: cfg.segment_secs,
            timeout: Duration::from_secs(cfg.timeout_secs),
            gain_db: None,
            source: Source::default(),
        }
    }

    fn check(&self) -> Result<(), HlsError> {
        if self.rungs.is_empty() {
            return Err(HlsError::Options("no rung to make".into()));
        }
        if self.rungs.contains(&0) || self.rungs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(HlsError::Options(format!(
                "rungs {:?} are not positive and strictly ascending",
                self.rungs
            )));
        }
        if self.segment_secs == 0 {
            return Err(HlsError::Options("segment_secs is 0".into()));
        }
        Ok(())
    }
}

/// What a file of the packaged tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// An fMP4 init segment, `seg/{sha256}.mp4`.
    Init,
    /// An fMP4 media segment, `seg/{sha256}.m4s`.
    Segment,
    /// A rendition's playlist, `{kbps}k.m3u8`.
    MediaPlaylist,
    /// `master.m3u8`.
    Master,
    /// A rung's progressive AAC file, `seg/{sha256}.m4a` (the same encode as its segments).
    Progressive,
    /// The waveform peaks, `peaks/{sha256}.json`.
    Peaks,
}

/// One file of the packaged tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Key relative to the track's HLS prefix (`seg/…`, `128k.m3u8`).
    pub name: String,
    /// Where it is in the work dir.
    pub path: PathBuf,
    /// What it is.
    pub kind: FileKind,
}

/// One rung of the ladder as packaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    /// AAC bitrate asked of the encoder.
    pub bitrate_kbps: u32,
    /// Its media playlist, relative (`128k.m3u8`).
    pub playlist: String,
    /// Peak segment bit rate, bits/s, as RFC 8216 defines it (segment bytes only; the init
    /// segment, fetched once, counts in neither figure).
    pub bandwidth: u64,
    /// Segment bytes over total duration, bits/s.
    pub average_bandwidth: u64,
    /// RFC 6381 codec string.
    pub codecs: String,
    /// Number of media segments.
    pub segments: u32,
    /// Sum of the segments' `EXTINF` durations.
    pub duration_ms: u64,
    /// The same audio as one progressive AAC file (`seg/{sha256}.m4a`), for players without HLS.
    pub progressive: String,
}

/// A packaged tree in the work dir, ready for [`upload`].
#[derive(Debug, Clone, PartialEq)]
pub struct Packaged {
    /// Every file: init and media segments (by name), media playlists (ascending), master.
    pub files: Vec<OutFile>,
    /// The renditions, ascending bitrate.
    pub renditions: Vec<Rendition>,
    /// The master playlist's name, [`MASTER`].
    pub master: String,
    /// Loudness, gapless data and the peaks object (also in `files`).
    pub analysis: Analysis,
}

/// Packages `input` into `work_dir` (which the caller created, empty, and removes): ONE ffmpeg
/// process decodes once and encodes every rung; then segments get their SHA-256 names, media
/// playlists are rewritten and the master is written. `progress` gets 0..=1, non-decreasing,
/// while ffmpeg runs (only with a `duration_hint`). On error the work dir may hold partial
/// output; nothing is ever written outside it.
pub async fn package(
    input: &Path,
    work_dir: &Path,
    opts: &Options,
    duration_hint: Option<Duration>,
    progress: &(dyn Fn(f64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Packaged, HlsError> {
    opts.check()?;
    let input = std::path::absolute(input).map_err(io_err("resolve", input))?;
    let input_bytes = tokio::fs::metadata(&input)
        .await
        .map_err(io_err("read", &input))?
        .len();
    let work_dir = std::path::absolute(work_dir).map_err(io_err("resolve", work_dir))?;
    let meta = tokio::fs::metadata(&work_dir)
        .await
        .map_err(io_err("open work dir", &work_dir))?;
    if !meta.is_dir() {
        return Err(io_err("open work dir", &work_dir)(std::io::Error::from(
            std::io::ErrorKind::NotADirectory,
        )));
    }
    let mut opts = opts.clone();
    if opts.source.duration.is_none() {
        opts.source.duration = duration_hint;
    }
    let opts = &opts;
    let args = ffmpeg_args(&input, opts);
    let run = ffmpeg::Run {
        program: &opts.ffmpeg,
        args: &args,
        work_dir: &work_dir,
        timeout: opts.timeout,
        duration_hint,
        limits: ffmpeg::Limits::for_package(&opts.rungs, duration_hint, input_bytes, opts.timeout),
    };
    // The reader drains the FIFO while ffmpeg runs; it is released whatever ffmpeg does.
    let samples = opts.source.duration.map(|d| {
        let rate = opts.source.sample_rate.map_or(44_100, Source::output_rate);
        d.as_millis() as u64 * u64::from(rate) / 1000
    });
    let channels = if opts.source.channels == Some(1) {
        1
    } else {
        2
    };
    let reader = meter::Reader::start(&work_dir, channels, analysis::block_frames(samples))?;
    let ran = run.run(progress, cancel).await;
    let pcm = tokio::task::spawn_blocking(move || reader.finish())
        .await
        .map_err(|e| HlsError::Io {
            op: "join",
            path: String::new(),
            source: std::io::Error::other(e.to_string()),
        })?;
    ran?;
    let pcm = pcm?;
    if cancel.is_cancelled() {
        return Err(HlsError::Cancelled);
    }
    let rungs = opts.rungs.clone();
    tokio::task::spawn_blocking(move || {
        let analysis = analysis::finish(&work_dir, &rungs, &pcm)?;
        playlist::finish(&work_dir, &rungs, analysis)
    })
    .await
    .map_err(|e| HlsError::Io {
        op: "join",
        path: String::new(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Name of the playlist ffmpeg writes for a rung (its segments share the stem), in the work dir.
pub(crate) fn raw_stem(kbps: u32) -> String {
    format!("ff-{kbps}k")
}

/// Sample rates AAC-LC players take everywhere; the nearest is picked, so a source above
/// 48 kHz is resampled and anything else keeps its rate.
const SAMPLE_RATES: &str = "48000|44100|32000|24000|22050|16000|12000|11025|8000";

/// The ffmpeg arguments [`package`] runs with (`input` absolute; outputs relative to the work
/// dir, which is ffmpeg's current directory). Public so the benchmark can run them bare.
pub fn ffmpeg_args(input: &Path, opts: &Options) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(OsString::from));
    push(&["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]);
    push(&["-progress", "pipe:1"]);
    // Input: audio containers and local files only (an uploaded playlist must not make ffmpeg
    // fetch URLs or open other files), and bit-exact decoding, so float DSP does not depend on
    // the CPU's SIMD.
    push(&["-format_whitelist", AUDIO_DEMUXERS]);
    push(&["-protocol_whitelist", "file"]);
    push(&["-fflags", "+bitexact", "-flags", "+bitexact"]);
    let mut file = OsString::from("file:"); // a name with ':' or a leading '-' stays a file
    file.push(input.as_os_str());
    a.push("-i".into());
    a.push(file);
    // Decode once, convert once (stereo at most, 48 kHz at most), split to every encoder.
    // Two more branches (issue 21): the loudness meter, and the PCM for our own reader
    // (`meter.rs`); `hls.normalize` puts its gain on the encoders' side only.
    let n = opts.rungs.len();
    let labels: String = (0..n).map(|i| format!("[a{i}]")).collect();
    let format = format!("[0:a:0]{}", opts.source.aformat());
    let analysis = analysis::filter_chain("loud");
    let graph = match opts.gain_db {
        Some(db) => format!(
            "{format},asplit=3[enc][loud][pcm];[enc]volume={db:.2}dB,asplit={n}{labels};{analysis}"
        ),
        None => format!("{format},asplit={}{labels}[loud][pcm];{analysis}", n + 2),
    };
    a.extend(["-filter_complex".into(), graph.into()]);
    let segment_secs = opts.segment_secs.to_string();
    for (i, k) in opts.rungs.iter().enumerate() {
        let stem = raw_stem(*k);
        let rate = format!("{k}k");
        let label = format!("[a{i}]");
        let init = format!("{stem}-init.mp4");
        let segs = format!("{stem}-%05d.m4s");
        // One encoder, two muxers: the HLS rendition and a progressive file of the same bytes.
        let outputs = format!(
            "[f=hls:hls_segment_type=fmp4:hls_time={segment_secs}:hls_playlist_type=vod:\
             hls_fmp4_init_filename={init}:hls_segment_filename={segs}:fflags=+bitexact]{stem}.m3u8\
             |[f=mp4:movflags=+faststart:fflags=+bitexact]{stem}.m4a"
        );
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(OsString::from));
        push(&["-map", &label, "-vn", "-sn", "-dn"]);
        push(&["-map_metadata", "-1", "-map_chapters", "-1"]);
        push(&["-c:a", "aac", "-b:a", &rate, "-flags:a", "+bitexact"]);
        push(&["-fflags", "+bitexact"]);
        push(&["-f", "tee", &outputs]);
    }
    a.extend(["-map", "[pcm]"].iter().map(OsString::from));
    a.extend(analysis::PCM_OUTPUT.iter().map(OsString::from));
    a
}
