//! The PCM side of the analysis: ffmpeg writes the decoded audio (f32, interleaved) into a FIFO
//! in the work dir and a thread of ours reads it while ffmpeg encodes, so the costly parts run
//! on another core instead of in ffmpeg's single transcoding thread: the true peak (ITU-R
//! BS.1770 annex 2: 4× oversampling, a 48-tap polyphase interpolator) and the min/max blocks of
//! the waveform. The real sample count comes out too.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::{HlsError, io_err};

/// The FIFO's name in the work dir.
pub(crate) const PCM_FIFO: &str = "ff-pcm.fifo";
/// Oversampling factor and taps per phase of the true-peak interpolator.
const PHASES: usize = 4;
const TAPS: usize = 12;

/// What the reader measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct PcmStats {
    /// `(min, max, frames)` per block of `block` frames, over all channels.
    pub(crate) blocks: Vec<(f32, f32, u64)>,
    /// Frames (samples per channel) read.
    pub(crate) frames: u64,
    /// Highest absolute value of the 4× oversampled signal (linear).
    pub(crate) true_peak: f32,
}

/// The reading thread, started before ffmpeg.
pub(crate) struct Reader {
    fifo: PathBuf,
    thread: JoinHandle<std::io::Result<PcmStats>>,
}

/// The windowed-sinc interpolator: `coef[p][k]` weighs the sample `k` back for phase `p`.
fn interpolator() -> [[f32; TAPS]; PHASES] {
    let n = PHASES * TAPS;
    let centre = (n - 1) as f64 / 2.0;
    let mut c = [[0f32; TAPS]; PHASES];
    for i in 0..n {
        let x = (i as f64 - centre) / PHASES as f64;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        };
        // Blackman window.
        let t = 2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64;
        let w = 0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos();
        c[i % PHASES][i / PHASES] = (sinc * w) as f32;
    }
    c
}

impl Reader {
    /// Makes the FIFO and starts reading `channels`-channel audio from it in blocks of `block`
    /// frames.
    pub(crate) fn start(work_dir: &Path, channels: usize, block: u64) -> Result<Reader, HlsError> {
        let fifo = work_dir.join(PCM_FIFO);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| io_err("mkfifo", &fifo)(e.into()))?;
        let path = fifo.clone();
        let thread = std::thread::Builder::new()
            .name("pcm-meter".into())
            .spawn(move || measure(&path, channels.max(1), block.max(1)))
            .map_err(io_err("spawn a reader for", &fifo))?;
        Ok(Reader { fifo, thread })
    }

    /// Waits for the reader once ffmpeg is gone. If ffmpeg never opened the FIFO (it failed
    /// first), opening its write end here releases the reader with an empty stream.
    pub(crate) fn finish(self) -> Result<PcmStats, HlsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
        // A non-blocking open for writing succeeds only while a reader has the FIFO open (or
        // waits in its open); closing it then ends the stream. ENXIO: the reader is not in
        // its open yet, or done.
        while !self.thread.is_finished() {
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nonblock)
                .open(&self.fifo);
            if opened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stats = self
            .thread
            .join()
            .map_err(|_| io_err("read", &self.fifo)(std::io::Error::other("the reader panicked")))?
            .map_err(io_err("read", &self.fifo))?;
        let _ = std::fs::remove_file(&self.fifo);
        Ok(stats)
    }
}

/// Reads the FIFO to its end: a reader that stops early would block ffmpeg.
fn measure(fifo: &Path, channels: usize, block: u64) -> std::io::Result<PcmStats> {
    let mut f = std::fs::File::open(fifo)?;
    let coef = interpolator();
    // Largest gain of a phase: an interpolated value never exceeds it × the window's peak.
    let gain = coef
        .iter()
        .map(|p| p.iter().map(|c| c.abs()).sum::<f32>())
        .fold(0.0, f32::max);
    let mut hist = vec![[0f32; TAPS]; channels];
    let mut out = PcmStats::default();
    let (mut lo, mut hi, mut n) = (f32::MAX, f32::MIN, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0usize;
    let frame_bytes = 4 * channels;
    loop {
        let got = f.read(&mut buf[have..])?;
        if got == 0 {
            break;
        }
        have += got;
        let whole = have / frame_bytes * frame_bytes;
        for frame in buf[..whole].chunks_exact(frame_bytes) {
            for (ch, s) in frame.chunks_exact(4).enumerate() {
                let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                lo = lo.min(x);
                hi = hi.max(x);
                let h = &mut hist[ch];
                h.copy_within(0..TAPS - 1, 1);
                h[0] = x;
                // Only where the interpolation could beat the peak so far.
                let window = h.iter().fold(0f32, |m, v| m.max(v.abs()));
                if window * gain > out.true_peak {
                    out.true_peak = out.true_peak.max(x.abs());
                    for p in &coef {
                        let y: f32 = p.iter().zip(h.iter()).map(|(c, v)| c * v).sum();
                        out.true_peak = out.true_peak.max(y.abs());
                    }
                }
            }
            n += 1;
            if n == block {
                out.blocks.push((lo, hi, n));
                (lo, hi, n) = (f32::MAX, f32::MIN, 0);
            }
        }
        out.frames += (whole / frame_bytes) as u64;
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
    if n > 0 {
        out.blocks.push((lo, hi, n));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_of_the_interpolator_passes_dc_at_unit_gain() {
        for p in interpolator() {
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 0.01, "{sum}");
        }
    }

    #[test]
    fn the_reader_finds_blocks_frames_and_an_inter_sample_peak() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reader::start(dir.path(), 2, 100).unwrap();
        // A sine at a quarter of the rate, sampled 45° off its peaks: samples reach 0.707 × A,
        // the waveform between them reaches A.
        let a = 0.5f32;
        let mut bytes = Vec::new();
        for i in 0..1000 {
            let v =
                a * (std::f32::consts::FRAC_PI_2 * i as f32 + std::f32::consts::FRAC_PI_4).sin();
            bytes.extend(v.to_le_bytes());
            bytes.extend((v / 2.0).to_le_bytes());
        }
        std::fs::write(dir.path().join(PCM_FIFO), &bytes).unwrap();
        let s = r.finish().unwrap();
        assert_eq!(s.frames, 1000);
        assert_eq!(s.blocks.len(), 10);
        assert!((s.blocks[3].1 - a * std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-4);
        assert!((s.true_peak - a).abs() < 0.02 * a, "{}", s.true_peak);
        // ffmpeg failed before opening the FIFO: the reader is released, empty.
        assert!(!dir.path().join(PCM_FIFO).exists(), "the FIFO is removed");
        let s = Reader::start(dir.path(), 1, 10).unwrap().finish().unwrap();
        assert_eq!(s.frames, 0);
    }
}
