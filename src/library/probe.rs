//! What is in an audio file: tags, technical properties and cover art. lofty reads the file;
//! ffprobe (when installed) is the fallback for files lofty cannot parse. Neither succeeding
//! means the file is not audio Veza can serve.
//!
//! ffprobe reads whatever an editor uploads, so it runs fenced in (issue #16): audio demuxers
//! only ([`AUDIO_DEMUXERS`]: a playlist, HLS, DASH, concat or image sequence named `.mp3` is
//! refused instead of being followed to URLs or to other files on the host), local file reads
//! only, a time limit after which the child is killed, and a cap on what it prints. Refusals
//! never quote the server's paths: the caller shows them to clients.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lofty::file::FileType;
use lofty::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::LibraryError;
use crate::hls::AUDIO_DEMUXERS;

/// Longest ffprobe may look at one file before it is killed: a real audio file takes well
/// under a second, while a live playlist would keep it waiting for segments forever.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Most JSON kept from ffprobe's stdout (a pathological file may carry megabytes of tags).
const MAX_JSON: usize = 4 * 1024 * 1024;
/// Most of ffprobe's stderr kept for the log.
const MAX_STDERR: usize = 4096;

/// Metadata read from a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probed {
    /// Tag title.
    pub title: Option<String>,
    /// Tag artist.
    pub artist: Option<String>,
    /// Tag album.
    pub album: Option<String>,
    /// Tag track number.
    pub track_number: Option<u32>,
    /// Tag album artist.
    pub album_artist: Option<String>,
    /// Tag genre.
    pub genre: Option<String>,
    /// Tag year (of the recording date).
    pub year: Option<u32>,
    /// Tag disc number.
    pub disc_number: Option<u32>,
    /// Duration.
    pub duration_ms: Option<u64>,
    /// Short codec name.
    pub codec: String,
    /// Average audio bitrate.
    pub bitrate_kbps: Option<u32>,
    /// Sample rate.
    pub sample_rate: Option<u32>,
    /// Channels.
    pub channels: Option<u8>,
    /// MIME type of the container.
    pub content_type: String,
    /// File extension Veza stores the original under.
    pub ext: String,
    /// Embedded cover art: (bytes, image extension).
    pub cover: Option<(Vec<u8>, &'static str)>,
}

/// Reads a file's metadata; `ffprobe` is used when lofty cannot parse it. `NotAudio` when
/// neither can; its message names no server path.
pub async fn probe(path: &Path, ffprobe: &str) -> Result<Probed, LibraryError> {
    let owned = path.to_owned();
    // lofty reads the file with blocking I/O.
    let lofty = tokio::task::spawn_blocking(move || probe_lofty(&owned))
        .await
        .unwrap_or_else(|e| Err(format!("the tag reader failed: {e}")));
    let lofty_err = match lofty {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    let ff_err = match probe_ffprobe(path, ffprobe, PROBE_TIMEOUT).await {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    tracing::debug!(
        file = %path.display(),
        lofty = %lofty_err,
        ffprobe = %ff_err.detail(),
        "not audio"
    );
    Err(LibraryError::NotAudio(scrub(
        &format!("{lofty_err}; ffprobe: {ff_err}"),
        path,
    )))
}

/// `message` with every mention of `path` replaced by "the file", so a refusal shown to a
/// client does not reveal where the server keeps its uploads.
fn scrub(message: &str, path: &Path) -> String {
    let shown = path.display().to_string();
    if shown.is_empty() {
        return message.to_owned();
    }
    message.replace(&shown, "the file")
}

fn clean(s: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn probe_lofty(path: &Path) -> Result<Probed, String> {
    // Guess from the content: spooled uploads have no extension to go by.
    let file = lofty::probe::Probe::open(path)
        .map_err(|e| e.to_string())?
        .guess_file_type()
        .map_err(|e| e.to_string())?
        .read()
        .map_err(|e| e.to_string())?;
    let props = file.properties();
    let (codec, content_type, ext) = match file.file_type() {
        FileType::Mpeg => ("mp3", "audio/mpeg", "mp3"),
        FileType::Flac => ("flac", "audio/flac", "flac"),
        FileType::Opus => ("opus", "audio/ogg", "opus"),
        FileType::Vorbis => ("vorbis", "audio/ogg", "ogg"),
        FileType::Mp4 => ("aac", "audio/mp4", "m4a"),
        FileType::Aac => ("aac", "audio/aac", "aac"),
        FileType::Wav => ("pcm", "audio/wav", "wav"),
        FileType::Aiff => ("pcm", "audio/aiff", "aiff"),
        other => return Err(format!("unsupported format {other:?}")),
    };
    if props.duration() == Duration::ZERO && props.sample_rate().is_none() {
        return Err("no audio stream".into());
    }
    let tag = file.primary_tag().or_else(|| file.first_tag());
    // Any tag may carry the picture (an MP3 can hold ID3v2 and APE); sniff its bytes rather
    // than trusting the declared MIME type, which taggers often get wrong.
    let cover = file
        .tags()
        .iter()
        .flat_map(|t| t.pictures())
        .find_map(|pic| image_ext(pic.data()).map(|ext| (pic.data().to_vec(), ext)));
    Ok(Probed {
        title: tag.and_then(|t| clean(t.title())),
        artist: tag.and_then(|t| clean(t.artist())),
        album: tag.and_then(|t| clean(t.album())),
        track_number: tag.and_then(|t| t.track()),
        album_artist: tag.and_then(|t| {
            clean(
                t.get_string(ItemKey::AlbumArtist)
                    .map(std::borrow::Cow::Borrowed),
            )
        }),
        genre: tag.and_then(|t| clean(t.genre())),
        year: tag.and_then(|t| t.date()).map(|d| u32::from(d.year)),
        disc_number: tag.and_then(|t| t.disk()),
        duration_ms: Some(props.duration().as_millis() as u64).filter(|d| *d > 0),
        codec: codec.into(),
        bitrate_kbps: props.audio_bitrate().or(props.overall_bitrate()),
        sample_rate: props.sample_rate(),
        channels: props.channels(),
        content_type: content_type.into(),
        ext: ext.into(),
        cover,
    })
}

/// The image type from its magic bytes.
fn image_ext(data: &[u8]) -> Option<&'static str> {
    match data {
        [0x89, b'P', b'N', b'G', ..] => Some("png"),
        [0xFF, 0xD8, 0xFF, ..] => Some("jpg"),
        [b'G', b'I', b'F', b'8', ..] => Some("gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("webp"),
        _ => None,
    }
}

/// Why the ffprobe fallback did not read a file. `Display` is what clients see: fixed words
/// and ffprobe's codec names, never its stderr (which quotes the path).
#[derive(Debug)]
enum FfprobeError {
    /// ffprobe could not be started.
    Spawn(std::io::Error),
    /// Killed at the time limit.
    TimedOut(Duration),
    /// ffprobe refused the file (not an allowed container, corrupt); its stderr, for the log.
    Refused(String),
    /// Its output was not the JSON asked for.
    Output(String),
    /// A container with no audio stream.
    NoAudio,
    /// An audio codec Veza does not serve.
    Codec(String),
}

impl FfprobeError {
    /// Everything known, paths included: for the server's log only.
    fn detail(&self) -> String {
        match self {
            Self::Spawn(e) => format!("could not run ffprobe: {e}"),
            Self::Refused(stderr) => format!("refused: {stderr}"),
            Self::Output(e) => format!("unreadable output: {e}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for FfprobeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(_) => f.write_str("could not run ffprobe"),
            Self::TimedOut(t) => write!(f, "reading the file took longer than {t:?}"),
            Self::Refused(_) => f.write_str("not a recognised audio container"),
            Self::Output(_) => f.write_str("unreadable ffprobe output"),
            Self::NoAudio => f.write_str("no audio stream"),
            Self::Codec(c) => write!(f, "unsupported codec {c}"),
        }
    }
}

/// Runs `program` (ffprobe) on `path` with the audio allow-lists and returns its stdout; the
/// child is killed and reaped at `timeout` (and killed if this future is dropped: an upload
/// whose client went away).
async fn run_ffprobe(
    program: &str,
    path: &Path,
    timeout: Duration,
) -> Result<Vec<u8>, FfprobeError> {
    // `file:` keeps a name with ':' or a leading '-' a local file.
    let mut input = OsString::from("file:");
    input.push(path.as_os_str());
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(["-v", "error", "-format_whitelist", AUDIO_DEMUXERS])
        .args(["-protocol_whitelist", "file"])
        .args(["-print_format", "json", "-show_format", "-show_streams"])
        .arg(input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        tracing::warn!(program, error = %e, "cannot run ffprobe");
        FfprobeError::Spawn(e)
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let ran = tokio::time::timeout(timeout, async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout, MAX_JSON),
            read_capped(stderr, MAX_STDERR),
            child.wait()
        );
        (out, err, status)
    })
    .await;
    let Ok((out, err, status)) = ran else {
        // Kill and reap, so no ffprobe outlives the request.
        let _ = child.kill().await;
        return Err(FfprobeError::TimedOut(timeout));
    };
    let status = status.map_err(|e| FfprobeError::Output(e.to_string()))?;
    if !status.success() {
        return Err(FfprobeError::Refused(
            String::from_utf8_lossy(&err).trim().to_owned(),
        ));
    }
    if out.len() > MAX_JSON {
        return Err(FfprobeError::Output(format!("more than {MAX_JSON} bytes")));
    }
    Ok(out)
}

/// Reads `r` to its end (so the writer never blocks on a full pipe), keeping at most
/// `max + 1` bytes: one more than `max` says it was cut.
async fn read_capped(mut r: impl AsyncRead + Unpin, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = (max + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn probe_ffprobe(
    path: &Path,
    ffprobe: &str,
    timeout: Duration,
) -> Result<Probed, FfprobeError> {
    let stdout = run_ffprobe(ffprobe, path, timeout).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&stdout).map_err(|e| FfprobeError::Output(e.to_string()))?;
    let stream = v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "audio"))
        .ok_or(FfprobeError::NoAudio)?;
    let codec = stream["codec_name"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let (content_type, ext) = match codec.as_str() {
        "mp3" => ("audio/mpeg", "mp3"),
        "flac" => ("audio/flac", "flac"),
        "opus" => ("audio/ogg", "opus"),
        "vorbis" => ("audio/ogg", "ogg"),
        "aac" | "alac" => ("audio/mp4", "m4a"),
        c if c.starts_with("pcm_") => ("audio/wav", "wav"),
        other => return Err(FfprobeError::Codec(other.chars().take(40).collect())),
    };
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let tags = &v["format"]["tags"];
    let tag = |k: &str| {
        tags.as_object()
            .and_then(|m| m.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)))
            .and_then(|(_, v)| v.as_str())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    Ok(Probed {
        title: tag("title"),
        artist: tag("artist"),
        album: tag("album"),
        track_number: tag("track").and_then(|t| t.split('/').next()?.parse().ok()),
        album_artist: tag("album_artist"),
        genre: tag("genre"),
        year: tag("date").and_then(|d| d.get(..4)?.parse().ok()),
        disc_number: tag("disc").and_then(|t| t.split('/').next()?.parse().ok()),
        duration_ms: num(&v["format"]["duration"]).map(|d| (d * 1000.0) as u64),
        codec: if codec.starts_with("pcm_") {
            "pcm".into()
        } else {
            codec
        },
        bitrate_kbps: num(&stream["bit_rate"])
            .or(num(&v["format"]["bit_rate"]))
            .map(|b| (b / 1000.0) as u32),
        sample_rate: num(&stream["sample_rate"]).map(|r| r as u32),
        channels: stream["channels"].as_u64().map(|c| c as u8),
        content_type: content_type.into(),
        ext: ext.into(),
        cover: None,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Instant;

    use super::*;

    /// Makes an audio fixture with the real ffmpeg.
    fn generate(dir: &Path, name: &str, codec: &[&str]) -> PathBuf {
        let out = dir.join(name);
        let done = Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i"])
            .arg("sine=frequency=440:duration=1")
            .args(codec)
            .arg(&out)
            .output()
            .expect("ffmpeg is required by these tests (./.ci/test installs it)");
        assert!(done.status.success(), "{name}: {done:?}");
        out
    }

    /// An executable shell script (retried spawns cover "text file busy": another test
    /// thread may fork while this one still has the file open for writing).
    fn script(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("fake-ffprobe");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[tokio::test]
    async fn a_hung_ffprobe_is_killed_at_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let pid_file = tmp.path().join("pid");
        let fake = script(
            tmp.path(),
            &format!("echo $$ > '{}'\nexec sleep 60", pid_file.display()),
        );
        let input = tmp.path().join("in.mp3");
        std::fs::write(&input, b"x").unwrap();
        let started = Instant::now();
        let r = loop {
            match run_ffprobe(fake.to_str().unwrap(), &input, Duration::from_secs(1)).await {
                Err(FfprobeError::Spawn(e)) if e.raw_os_error() == Some(26) => continue,
                other => break other,
            }
        };
        let took = started.elapsed();
        assert!(matches!(r, Err(FfprobeError::TimedOut(_))), "{r:?}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
        // Killed and reaped: not even a zombie is left.
        assert!(!proc.exists(), "ffprobe child {} still exists", pid.trim());
    }

    #[tokio::test]
    async fn playlists_are_refused_whatever_their_name_and_the_refusal_names_no_path() {
        let tmp = tempfile::tempdir().unwrap();
        let tone = generate(tmp.path(), "tone.mp3", &["-c:a", "libmp3lame"]);
        let playlists = [
            // HLS naming a local file: before the allow-list, ffprobe read it as mp3.
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n{}\n#EXT-X-ENDLIST\n",
                tone.display()
            ),
            // A live playlist: an unrestricted ffprobe waits for segments forever.
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n".into(),
            format!("ffconcat version 1.0\nfile '{}'\n", tone.display()),
            format!("[playlist]\nFile1={}\nNumberOfEntries=1\n", tone.display()),
        ];
        for (i, text) in playlists.iter().enumerate() {
            let upload = tmp.path().join(format!("upload-{i}"));
            std::fs::write(&upload, text).unwrap();
            let started = Instant::now();
            let r = probe(&upload, "ffprobe").await;
            assert!(started.elapsed() < Duration::from_secs(5), "{text}");
            let Err(LibraryError::NotAudio(m)) = r else {
                panic!("{text}: {r:?}");
            };
            assert!(!m.contains(&*tmp.path().to_string_lossy()), "{m}");
            assert!(!m.contains("upload-"), "{m}");
        }
    }

    #[tokio::test]
    async fn the_allow_list_still_opens_every_audio_container_veza_takes() {
        let tmp = tempfile::tempdir().unwrap();
        let fixtures: [(&str, &[&str], &str); 8] = [
            ("a.mp3", &["-c:a", "libmp3lame"], "mp3"),
            ("a.flac", &["-c:a", "flac"], "flac"),
            ("a.ogg", &["-c:a", "libvorbis"], "vorbis"),
            ("a.opus", &["-c:a", "libopus"], "opus"),
            ("a.m4a", &["-c:a", "aac"], "aac"),
            ("a.wav", &["-c:a", "pcm_s16le"], "pcm"),
            ("a.aiff", &["-c:a", "pcm_s16be"], "pcm"),
            ("a.mka", &["-c:a", "flac"], "flac"),
        ];
        for (name, codec, want) in fixtures {
            let file = generate(tmp.path(), name, codec);
            let p = probe_ffprobe(&file, "ffprobe", PROBE_TIMEOUT)
                .await
                .unwrap_or_else(|e| panic!("{name}: {}", e.detail()));
            assert_eq!(p.codec, want, "{name}");
            assert!(p.duration_ms.unwrap() >= 900, "{name}: {p:?}");
        }
    }

    #[tokio::test]
    async fn a_refusal_replaces_the_path_with_words() {
        let tmp = tempfile::tempdir().unwrap();
        let text = tmp.path().join("upload-0123");
        std::fs::write(&text, "these are not the bytes you are looking for").unwrap();
        let Err(LibraryError::NotAudio(m)) = probe(&text, "ffprobe").await else {
            panic!("text is not audio");
        };
        assert!(m.contains("not a recognised audio container"), "{m}");
        assert!(!m.contains(&*tmp.path().to_string_lossy()), "{m}");
        assert_eq!(
            scrub(
                "/srv/veza/tmp/upload-1: bad; /srv/veza/tmp/upload-1",
                Path::new("/srv/veza/tmp/upload-1")
            ),
            "the file: bad; the file"
        );
    }
}
