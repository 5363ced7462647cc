//! What is in an audio file: tags, technical properties and cover art. lofty reads the file;
//! ffprobe (when installed) is the fallback for files lofty cannot parse. Neither succeeding
//! means the file is not audio Veza can serve.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lofty::file::FileType;
use lofty::prelude::*;

use super::LibraryError;

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

/// Reads a file's metadata; `ffprobe` is used when lofty cannot parse it.
pub fn probe(path: &Path, ffprobe: &str) -> Result<Probed, LibraryError> {
    match probe_lofty(path) {
        Ok(p) => Ok(p),
        Err(lofty_err) => probe_ffprobe(path, ffprobe)
            .map_err(|ff_err| LibraryError::NotAudio(format!("{lofty_err}; ffprobe: {ff_err}"))),
    }
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

fn probe_ffprobe(path: &Path, ffprobe: &str) -> Result<Probed, String> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run {ffprobe}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(300)
            .collect());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let stream = v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "audio"))
        .ok_or("no audio stream")?;
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
        other => return Err(format!("unsupported codec {other}")),
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
