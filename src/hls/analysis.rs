//! Audio analysis in the packaging run (issue 21). The same decode that feeds the encoders
//! also feeds `ebur128=metadata=1` (EBU R128 integrated loudness, loudness range, and one
//! 400 ms block loudness every 100 ms, printed to [`R128_FILE`]; it ends in `anullsink`) and a
//! PCM copy into a FIFO that [`super::meter`] reads on another core (true peak, waveform blocks,
//! sample count). After ffmpeg, [`finish`] writes the peaks object (BBC audiowaveform JSON,
//! version 2) and the AAC encoder delay and real duration into each init segment's edit list,
//! so players can play albums gapless.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::meter::{PCM_FIFO, PcmStats};
use super::{HlsError, io_err, raw_stem};

/// The loudness branch's log in the work dir.
pub(crate) const R128_FILE: &str = "ff-r128.txt";
/// Waveform points aimed at whatever the duration.
pub const PEAK_POINTS: u64 = 1800;
/// Blocks measured per waveform point (so the points come out at 90-100 % of the aim).
const BLOCKS_PER_POINT: u64 = 10;
/// Folder of the peaks object under the HLS prefix.
pub const PEAKS_DIR: &str = "peaks";
/// Samples ffmpeg's AAC encoder puts before the audio (its `initial_padding`).
pub const AAC_ENCODER_DELAY: u32 = 1024;
/// Samples per AAC-LC frame.
const AAC_FRAME: u64 = 1024;
/// Width of a block-loudness histogram bin, LU.
pub const HIST_STEP_LU: f64 = 0.05;
/// Blocks quieter than this never count (EBU R128 absolute gate), LUFS.
pub const ABSOLUTE_GATE_LUFS: f64 = -70.0;

/// Frames per waveform block for a track of about `samples` frames.
pub(crate) fn block_frames(samples: Option<u64>) -> u64 {
    samples
        .map_or(256, |n| n / (PEAK_POINTS * BLOCKS_PER_POINT))
        .clamp(16, 1 << 20)
}

/// The loudness branch from `[{loud}]`, and the arguments of the PCM output from `[{pcm}]`.
/// Neither may need a format conversion ffmpeg 5.1 cannot negotiate behind a split, so the
/// caller pins rate and layout before splitting.
pub(crate) fn filter_chain(loud: &str) -> String {
    format!("[{loud}]ebur128=metadata=1,ametadata=mode=print:file={R128_FILE},anullsink")
}

/// The PCM output's arguments (after its `-map`).
pub(crate) const PCM_OUTPUT: [&str; 6] = ["-c:a", "pcm_f32le", "-f", "f32le", "-y", PCM_FIFO];

/// Loudness of one track as measured (EBU R128, ffmpeg's meter).
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Integrated loudness, LUFS.
    pub integrated_lufs: f64,
    /// Loudness range, LU.
    pub range_lu: f64,
    /// Highest true peak over all channels, dBTP.
    pub true_peak_dbtp: f64,
    /// How many 400 ms blocks fell in each [`HIST_STEP_LU`] bin at or above the absolute
    /// gate (bin `i` starts at `-70 + i × step`): enough to gate several tracks as one album.
    pub blocks: Vec<(u32, u32)>,
}

/// Gapless playback data of the renditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gapless {
    /// Priming samples before the first real sample (also in each init segment's edit list).
    pub encoder_delay_samples: u32,
    /// Samples after the last real sample in the last AAC frame.
    pub padding_samples: u32,
    /// Real samples, at `sample_rate`.
    pub samples: u64,
    /// The renditions' sample rate.
    pub sample_rate: u32,
}

/// What the analysis branch found.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Loudness.
    pub loudness: Measured,
    /// Gapless data.
    pub gapless: Gapless,
    /// Name of the peaks object relative to the HLS prefix (`peaks/{sha256}.json`).
    pub peaks: String,
    /// Where it is in the work dir.
    pub peaks_path: PathBuf,
}

/// BBC audiowaveform's JSON format, version 2.
#[derive(Debug, Serialize)]
struct Waveform<'a> {
    version: u8,
    channels: u8,
    sample_rate: u32,
    samples_per_pixel: u64,
    bits: u8,
    length: u64,
    data: &'a [i8],
}

/// Reads the analysis branch's output in `work_dir`, writes the peaks object and patches each
/// rung's init segment (before they are hashed). `sample_rate` is the renditions' rate.
pub(crate) fn finish(work_dir: &Path, rungs: &[u32], pcm: &PcmStats) -> Result<Analysis, HlsError> {
    let r128 = work_dir.join(R128_FILE);
    let text = std::fs::read_to_string(&r128).map_err(io_err("read", &r128))?;
    let mut loudness = parse_r128(&text)?;
    std::fs::remove_file(&r128).map_err(io_err("remove", &r128))?;
    loudness.true_peak_dbtp = if pcm.true_peak > 0.0 {
        20.0 * f64::from(pcm.true_peak).log10()
    } else {
        f64::NEG_INFINITY
    };
    let blocks = &pcm.blocks;
    if blocks.is_empty() {
        return Err(HlsError::Playlist("the decoded audio is empty".into()));
    }
    let samples = pcm.frames;
    let mut sample_rate = None;
    for &kbps in rungs {
        let init = work_dir.join(format!("{}-init.mp4", raw_stem(kbps)));
        let mut bytes = std::fs::read(&init).map_err(io_err("read", &init))?;
        let rate = set_edit_list(&mut bytes, samples)
            .map_err(|e| HlsError::Playlist(format!("{}: {e}", init.display())))?;
        sample_rate.get_or_insert(rate);
        std::fs::write(&init, bytes).map_err(io_err("write", &init))?;
    }
    let sample_rate = sample_rate.unwrap_or_default();
    let (spp, data) = points(blocks);
    let json = serde_json::to_vec(&Waveform {
        version: 2,
        channels: 1,
        sample_rate,
        samples_per_pixel: spp,
        bits: 8,
        length: (data.len() / 2) as u64,
        data: &data,
    })
    .map_err(|e| HlsError::Playlist(format!("peaks: {e}")))?;
    let sha = crate::encoding::hex(&Sha256::digest(&json));
    let dir = work_dir.join(PEAKS_DIR);
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let peaks = format!("{PEAKS_DIR}/{sha}.json");
    let peaks_path = work_dir.join(&peaks);
    std::fs::write(&peaks_path, &json).map_err(io_err("write", &peaks_path))?;

    let frames = (samples + u64::from(AAC_ENCODER_DELAY)).div_ceil(AAC_FRAME);
    let padding = frames * AAC_FRAME - samples - u64::from(AAC_ENCODER_DELAY);
    Ok(Analysis {
        loudness,
        gapless: Gapless {
            encoder_delay_samples: AAC_ENCODER_DELAY,
            padding_samples: padding as u32,
            samples,
            sample_rate,
        },
        peaks,
        peaks_path,
    })
}

/// Merges blocks `(min, max, samples)` into about [`PEAK_POINTS`] min/max pairs (8-bit);
/// returns the samples per point too.
fn points(blocks: &[(f32, f32, u64)]) -> (u64, Vec<i8>) {
    let block = blocks.first().map_or(1, |b| b.2.max(1));
    let per = (blocks.len() as u64).div_ceil(PEAK_POINTS).max(1) as usize;
    let eight = |v: f32| (v * 128.0).round().clamp(-128.0, 127.0) as i8;
    let mut out = Vec::with_capacity(2 * blocks.len().div_ceil(per));
    for chunk in blocks.chunks(per) {
        let lo = chunk.iter().map(|b| b.0).fold(f32::INFINITY, f32::min);
        let hi = chunk.iter().map(|b| b.1).fold(f32::NEG_INFINITY, f32::max);
        out.extend([eight(lo), eight(hi)]);
    }
    (block * per as u64, out)
}

/// The last integrated loudness and range, and every block loudness (`M`), from
/// `ametadata=mode=print` output (the true peak comes from the PCM reader).
fn parse_r128(text: &str) -> Result<Measured, HlsError> {
    let bad = |what: String| HlsError::Playlist(format!("loudness log: {what}"));
    let (mut i, mut lra) = (None, None);
    let mut hist = std::collections::BTreeMap::<u32, u32>::new();
    for line in text.as_bytes().lines() {
        let line = line.map_err(|e| bad(e.to_string()))?;
        let Some((key, value)) = line
            .strip_prefix("lavfi.r128.")
            .and_then(|l| l.split_once('='))
        else {
            continue;
        };
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(format!("{key}={value:?} is not a number")))?;
        match key {
            "M" => {
                if let Some(bin) = hist_bin(v) {
                    *hist.entry(bin).or_default() += 1;
                }
            }
            "I" => i = Some(v),
            "LRA" => lra = Some(v),
            _ => {}
        }
    }
    let (Some(i), Some(lra)) = (i, lra) else {
        return Err(bad("no measurement (is the audio empty?)".into()));
    };
    Ok(Measured {
        integrated_lufs: i,
        range_lu: lra,
        true_peak_dbtp: f64::NEG_INFINITY,
        blocks: hist.into_iter().collect(),
    })
}

/// The histogram bin of a block's loudness, `None` below the absolute gate.
pub fn hist_bin(lufs: f64) -> Option<u32> {
    // NaN too.
    if lufs.is_nan() || lufs < ABSOLUTE_GATE_LUFS {
        return None;
    }
    Some(((lufs - ABSOLUTE_GATE_LUFS) / HIST_STEP_LU).floor() as u32)
}

/// The loudness a bin stands for (its centre), LUFS.
pub fn bin_lufs(bin: u32) -> f64 {
    ABSOLUTE_GATE_LUFS + (f64::from(bin) + 0.5) * HIST_STEP_LU
}

// ISO BMFF boxes, just enough to find and patch `moov/trak/edts/elst`.

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `(start, end, body_start)` of each child box in `b[from..to]`.
fn children(b: &[u8], from: usize, to: usize) -> Vec<(usize, usize, usize, [u8; 4])> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let Some(size) = be32(b, at) else { break };
        let size = size as usize;
        if size < 8 || at + size > to {
            break;
        }
        let mut name = [0u8; 4];
        name.copy_from_slice(&b[at + 4..at + 8]);
        out.push((at, at + size, at + 8, name));
        at += size;
    }
    out
}

fn child(b: &[u8], from: usize, to: usize, name: &[u8; 4]) -> Option<(usize, usize)> {
    children(b, from, to)
        .into_iter()
        .find(|c| &c.3 == name)
        .map(|c| (c.2, c.1))
}

/// Sets the init segment's edit list to skip the encoder delay and end after `samples` real
/// samples; returns the track's sample rate (its media timescale). ffmpeg's HLS muxer writes
/// an empty edit (`media_time` 0, whole duration) because it shifts the priming to time 0.
fn set_edit_list(b: &mut [u8], samples: u64) -> Result<u32, String> {
    let len = b.len();
    let (moov, moov_end) = child(b, 0, len, b"moov").ok_or("no moov box")?;
    let (mvhd, _) = child(b, moov, moov_end, b"mvhd").ok_or("no mvhd box")?;
    // mvhd: version(1) flags(3), then times; timescale at 12 (v0) or 20 (v1).
    let movie_scale = be32(b, mvhd + if b[mvhd] == 1 { 20 } else { 12 }).ok_or("short mvhd")?;
    let (trak, trak_end) = child(b, moov, moov_end, b"trak").ok_or("no trak box")?;
    let (mdia, mdia_end) = child(b, trak, trak_end, b"mdia").ok_or("no mdia box")?;
    let (mdhd, _) = child(b, mdia, mdia_end, b"mdhd").ok_or("no mdhd box")?;
    let rate = be32(b, mdhd + if b[mdhd] == 1 { 20 } else { 12 }).ok_or("short mdhd")?;
    let (edts, edts_end) = child(b, trak, trak_end, b"edts").ok_or("no edit list")?;
    let (elst, elst_end) = child(b, edts, edts_end, b"elst").ok_or("no edit list")?;
    let version = b[elst];
    if be32(b, elst + 4) != Some(1) {
        return Err("edit list has other than one entry".into());
    }
    let duration =
        (u128::from(samples) * u128::from(movie_scale)).div_ceil(u128::from(rate.max(1))) as u64;
    let delay = u64::from(AAC_ENCODER_DELAY);
    let entry = elst + 8;
    if version == 1 {
        if entry + 20 > elst_end {
            return Err("short edit list".into());
        }
        b[entry..entry + 8].copy_from_slice(&duration.to_be_bytes());
        b[entry + 8..entry + 16].copy_from_slice(&delay.to_be_bytes());
    } else {
        if entry + 12 > elst_end {
            return Err("short edit list".into());
        }
        let d = u32::try_from(duration).map_err(|_| "track too long for the edit list")?;
        b[entry..entry + 4].copy_from_slice(&d.to_be_bytes());
        b[entry + 4..entry + 8].copy_from_slice(&(delay as u32).to_be_bytes());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_r128_log_gives_the_last_summary_and_a_block_histogram() {
        let log = "frame:0    pts:0       pts_time:0\nlavfi.r128.M=-120.691\nlavfi.r128.I=-70.000\n\
                   lavfi.r128.LRA=0.000\nlavfi.r128.true_peak=0.027\n\
                   frame:1    pts:4410    pts_time:0.1\nlavfi.r128.M=-31.329\nlavfi.r128.I=-31.330\n\
                   lavfi.r128.LRA=1.500\nlavfi.r128.true_peak=0.5\n";
        let m = parse_r128(log).unwrap();
        assert_eq!(m.integrated_lufs, -31.33);
        assert_eq!(m.range_lu, 1.5);
        assert_eq!(m.blocks, vec![(hist_bin(-31.329).unwrap(), 1)]);
        assert!((bin_lufs(m.blocks[0].0) - -31.329).abs() <= HIST_STEP_LU);
        assert!(parse_r128("").is_err());
        assert!(parse_r128("lavfi.r128.I=x").is_err());
    }

    #[test]
    fn about_1800_points_whatever_the_length() {
        for blocks in [1usize, 1799, 1800, 1801, 18_000, 18_999, 40_000] {
            let b: Vec<(f32, f32, u64)> = (0..blocks)
                .map(|i| (-0.5, (i + 1) as f32 / blocks as f32, 64))
                .collect();
            let (spp, data) = points(&b);
            let n = data.len() as u64 / 2;
            assert!(n <= PEAK_POINTS, "{blocks}: {n}");
            assert_eq!(n, (blocks as u64 * 64).div_ceil(spp), "{blocks}");
            assert_eq!(data[0], -64);
            assert!(
                data[data.len() - 1] >= 126,
                "{blocks}: the last block is the loudest"
            );
        }
    }
}
