//! What the packaging run measured about a track (issue 21), and the only SQL on
//! `track_analysis`: EBU R128 loudness, ReplayGain 2.0 track and album values, gapless data
//! and the peaks object. Album values gate every track of the same album and album artist as one
//! programme (from the block histograms kept per track) and are recomputed whenever that
//! album's tracks change: packaged, edited, deleted.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{LibraryError, Track, TrackId};
use crate::hls::analysis::{ABSOLUTE_GATE_LUFS, bin_lufs};
use crate::hls::{Gapless as RunGapless, Measured};
use crate::storage::BlobKey;

/// ReplayGain 2.0's reference loudness, LUFS.
pub const REFERENCE_LUFS: f64 = -18.0;
/// Lowest dBTP stored (silence has no peak).
const FLOOR_DBTP: f64 = -200.0;

/// A track's loudness and ReplayGain 2.0 values (what an OpenSubsonic `replayGain` needs).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Loudness {
    /// EBU R128 integrated loudness, LUFS.
    pub integrated_lufs: f64,
    /// EBU R128 loudness range, LU.
    pub range_lu: f64,
    /// Highest true peak, dBTP.
    pub true_peak_dbtp: f64,
    /// ReplayGain 2.0 track gain (to −18 LUFS), dB.
    pub track_gain_db: f64,
    /// Track peak, linear (1.0 is full scale).
    pub track_peak: f64,
    /// ReplayGain 2.0 album gain (same album and album artist gated together), dB.
    pub album_gain_db: f64,
    /// Album peak, linear.
    pub album_peak: f64,
}

/// Gapless playback data of the HLS renditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Gapless {
    /// Priming samples before the audio (also in the init segments' edit lists).
    pub encoder_delay_samples: u32,
    /// Samples after the audio in the last AAC frame.
    pub padding_samples: u32,
}

/// A gain that brings `lufs` to the reference, dB.
pub fn gain_db(lufs: f64) -> f64 {
    REFERENCE_LUFS - lufs
}

fn linear(dbtp: f64) -> f64 {
    10f64.powf(dbtp / 20.0)
}

/// Integrated loudness of several tracks' block histograms gated as one programme (EBU R128:
/// absolute gate −70 LUFS, relative gate 10 LU under the mean of the blocks above it); `None`
/// when no block passes.
pub fn gated_lufs<'a>(hists: impl IntoIterator<Item = &'a [(u32, u32)]> + Clone) -> Option<f64> {
    let energy = |lufs: f64| 10f64.powf((lufs + 0.691) / 10.0);
    let mean_above = |gate: f64| {
        let (mut sum, mut n) = (0.0, 0u64);
        for h in hists.clone() {
            for &(bin, count) in h {
                let l = bin_lufs(bin);
                if l >= gate {
                    sum += energy(l) * f64::from(count);
                    n += u64::from(count);
                }
            }
        }
        (n > 0).then(|| -0.691 + 10.0 * (sum / n as f64).log10())
    };
    let relative = mean_above(ABSOLUTE_GATE_LUFS)? - 10.0;
    mean_above(relative.max(ABSOLUTE_GATE_LUFS))
}

/// Stores a packaging run's analysis for `id` and recomputes its album, in one transaction.
/// False when the track is gone.
pub fn record(
    c: &mut Connection,
    id: &TrackId,
    m: &Measured,
    gapless: &RunGapless,
    peaks_key: &str,
    now: i64,
) -> Result<bool, LibraryError> {
    let tx = c.transaction()?;
    let Some(album) = album_of(&tx, id)? else {
        return Ok(false);
    };
    save(&tx, id, m, gapless, peaks_key, now)?;
    refresh_album(&tx, &album)?;
    tx.commit()?;
    Ok(true)
}

fn save(
    tx: &Connection,
    id: &TrackId,
    m: &Measured,
    gapless: &RunGapless,
    peaks_key: &str,
    now: i64,
) -> Result<(), LibraryError> {
    let blocks = serde_json::to_string(&m.blocks).map_err(|e| LibraryError::Invalid {
        field: "blocks",
        message: e.to_string(),
    })?;
    tx.execute(
        "INSERT INTO track_analysis (track_id, integrated_lufs, range_lu, true_peak_dbtp, blocks,
            encoder_delay, padding, peaks_key, analyzed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (track_id) DO UPDATE SET integrated_lufs = ?2, range_lu = ?3,
            true_peak_dbtp = ?4, blocks = ?5, encoder_delay = ?6, padding = ?7, peaks_key = ?8,
            analyzed_at = ?9",
        params![
            id.as_str(),
            m.integrated_lufs,
            m.range_lu,
            m.true_peak_dbtp.max(FLOOR_DBTP),
            blocks,
            gapless.encoder_delay_samples,
            gapless.padding_samples,
            peaks_key,
            now
        ],
    )?;
    Ok(())
}

/// An album: its name and lead artist (the album artist, else the track artist), as the
/// catalog groups albums too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Album {
    /// Album name ("" for none: such a track is its own album).
    pub album: String,
    /// Lead artist.
    pub artist: String,
    /// The track, when `album` is "".
    single: Option<String>,
}

/// The album a track belongs to.
pub fn album_of(c: &Connection, id: &TrackId) -> Result<Option<Album>, LibraryError> {
    Ok(c.query_row(
        "SELECT album, lead_artist FROM tracks WHERE id = ?1",
        [id.as_str()],
        |r| {
            let album: String = r.get(0)?;
            Ok(Album {
                single: album.is_empty().then(|| id.as_str().to_owned()),
                album,
                artist: r.get(1)?,
            })
        },
    )
    .optional()?)
}

/// Recomputes the album gain and peak of every analysed track of `album`.
pub fn refresh_album(c: &Connection, album: &Album) -> Result<(), LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT a.track_id, a.blocks, a.true_peak_dbtp FROM track_analysis a
         JOIN tracks t ON t.id = a.track_id
         WHERE (?3 IS NULL AND t.album = ?1 AND t.lead_artist = ?2) OR t.id = ?3",
    )?;
    let rows = st
        .query_map(params![album.album, album.artist, album.single], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut hists = Vec::with_capacity(rows.len());
    for (_, blocks, _) in &rows {
        let h: Vec<(u32, u32)> =
            serde_json::from_str(blocks).map_err(|e| LibraryError::Invalid {
                field: "blocks",
                message: e.to_string(),
            })?;
        hists.push(h);
    }
    let lufs = gated_lufs(hists.iter().map(Vec::as_slice));
    let peak = rows.iter().map(|r| r.2).fold(FLOOR_DBTP, f64::max);
    for (id, _, _) in &rows {
        c.execute(
            "UPDATE track_analysis SET album_gain_db = ?2, album_peak = ?3 WHERE track_id = ?1",
            params![id, lufs.map(gain_db), linear(peak)],
        )?;
    }
    Ok(())
}

/// Adds what was measured to a track read from `tracks`.
pub fn attach(c: &Connection, t: &mut Track) -> Result<(), LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT integrated_lufs, range_lu, true_peak_dbtp, album_gain_db, album_peak,
            encoder_delay, padding, peaks_key
         FROM track_analysis WHERE track_id = ?1",
    )?;
    let row = st
        .query_row([t.id.as_str()], |r| {
            let lufs: f64 = r.get(0)?;
            let dbtp: f64 = r.get(2)?;
            let loudness = Loudness {
                integrated_lufs: lufs,
                range_lu: r.get(1)?,
                true_peak_dbtp: dbtp,
                track_gain_db: gain_db(lufs),
                track_peak: linear(dbtp),
                album_gain_db: r.get::<_, Option<f64>>(3)?.unwrap_or(gain_db(lufs)),
                album_peak: r.get::<_, Option<f64>>(4)?.unwrap_or(linear(dbtp)),
            };
            let gapless = Gapless {
                encoder_delay_samples: r.get(5)?,
                padding_samples: r.get(6)?,
            };
            Ok((loudness, gapless, r.get::<_, String>(7)?))
        })
        .optional()?;
    if let Some((loudness, gapless, key)) = row {
        t.loudness = Some(loudness);
        t.gapless = Some(gapless);
        t.peaks_key = BlobKey::parse(&key).ok();
    }
    Ok(())
}

/// What [`queue_backfill`] did.
#[derive(Debug, Default)]
pub struct Backfill {
    /// Tracks given a new packaging job, with its id.
    pub queued: Vec<(TrackId, i64)>,
    /// Tracks that already had one pending (it will analyse them).
    pub pending: Vec<TrackId>,
    /// Taken-down tracks, left alone (restoring one packages it).
    pub taken_down: Vec<TrackId>,
}

/// Queues the packaging job, which measures as it packages, for `ids` (every track not yet
/// analysed when `None`), in one transaction: an unknown id queues nothing. Re-packaging an
/// already packaged track uploads nothing new (content-addressed names) and keeps it playable.
pub fn queue_backfill(
    c: &mut Connection,
    ids: Option<&[TrackId]>,
    max_attempts: u32,
    now: i64,
) -> Result<Backfill, LibraryError> {
    let tx = c.transaction()?;
    let ids = match ids {
        Some(ids) => ids.to_vec(),
        None => unanalysed(&tx)?,
    };
    let mut done = Backfill::default();
    for id in ids {
        let status: String = tx
            .query_row(
                "SELECT status FROM tracks WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(LibraryError::NotFound)?;
        if status == super::Status::TakenDown.as_str() {
            done.taken_down.push(id);
            continue;
        }
        let job = crate::jobs::NewJob::package_hls(id.as_str());
        match super::lifecycle::enqueue(&tx, &job, max_attempts, now)? {
            Some(job) => done.queued.push((id, job)),
            None => done.pending.push(id),
        }
    }
    tx.commit()?;
    Ok(done)
}

/// Ids of the tracks with no analysis yet (what `veza analyze --all` queues), oldest first.
fn unanalysed(c: &Connection) -> Result<Vec<TrackId>, LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT id FROM tracks t WHERE NOT EXISTS
            (SELECT 1 FROM track_analysis a WHERE a.track_id = t.id)
         ORDER BY created_at, id",
    )?;
    let ids = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    ids.iter()
        .map(|s| {
            s.parse().map_err(|e: String| LibraryError::Invalid {
                field: "id",
                message: e,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::analysis::hist_bin;

    fn hist(blocks: &[(f64, u32)]) -> Vec<(u32, u32)> {
        blocks
            .iter()
            .map(|&(l, n)| (hist_bin(l).unwrap(), n))
            .collect()
    }

    #[test]
    fn album_gating_weighs_blocks_by_energy_and_gates_quiet_ones() {
        let loud = hist(&[(-10.0, 100)]);
        let quiet = hist(&[(-30.0, 100)]);
        let one = gated_lufs([loud.as_slice()]).unwrap();
        assert!((one - -10.0).abs() < 0.05, "{one}");
        // The quiet track is more than 10 LU under the loud one's mean: gated out.
        let both = gated_lufs([loud.as_slice(), quiet.as_slice()]).unwrap();
        assert!((both - -10.0).abs() < 0.05, "{both}");
        // Two tracks 6 LU apart: the mean of energies, not of LUFS.
        let mid = hist(&[(-16.0, 100)]);
        let pair = gated_lufs([loud.as_slice(), mid.as_slice()]).unwrap();
        let want = -0.691 + 10.0 * ((10f64.powf(-0.9309) + 10f64.powf(-1.5309)) / 2.0).log10();
        assert!((pair - want).abs() < 0.05, "{pair} vs {want}");
        assert!(gated_lufs([[].as_slice()]).is_none());
        assert_eq!(gain_db(-23.0), 5.0);
    }
}
