//! The blob columns of every track (original, cover, HLS master, renditions, peaks), read in one
//! go for `veza backup` and `veza check`: the SQL stays in library, the inventory in backup.

use std::collections::BTreeSet;

use rusqlite::Connection;

use super::LibraryError;

/// The blob columns of the database.
#[derive(Debug, Default)]
pub struct Rows {
    /// (id, original_key, sha256, size_bytes, cover_key, hls_key) of every track.
    pub tracks: Vec<TrackRow>,
    /// (track id, playlist key) of every rendition.
    pub renditions: Vec<(String, String)>,
    /// (track id, key) of every rendition's progressive file.
    pub progressive: Vec<(String, String)>,
    /// Tracks with a packaging job still to run: their HLS tree may be mid-upload.
    pub busy: BTreeSet<String>,
}

/// One track's blob columns.
#[derive(Debug, Clone)]
pub struct TrackRow {
    /// Track id.
    pub id: String,
    /// Key of the original.
    pub original_key: String,
    /// SHA-256 of the original.
    pub sha256: String,
    /// Size of the original.
    pub size_bytes: i64,
    /// Key of the cover, if any.
    pub cover_key: Option<String>,
    /// Key of the master playlist, once packaged.
    pub hls_key: Option<String>,
    /// Key of the waveform peaks, once analysed (no playlist names it).
    pub peaks_key: Option<String>,
}

/// Reads the blob columns (on a snapshot for `backup`, on the live database for `check`).
pub fn load(c: &Connection) -> Result<Rows, LibraryError> {
    let mut s = c.prepare(
        "SELECT id, original_key, sha256, size_bytes, cover_key, hls_key,
            (SELECT peaks_key FROM track_analysis a WHERE a.track_id = tracks.id)
         FROM tracks ORDER BY id",
    )?;
    let tracks = s
        .query_map([], |r| {
            Ok(TrackRow {
                id: r.get(0)?,
                original_key: r.get(1)?,
                sha256: r.get(2)?,
                size_bytes: r.get(3)?,
                cover_key: r.get(4)?,
                hls_key: r.get(5)?,
                peaks_key: r.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut s = c.prepare("SELECT track_id, playlist_key FROM track_renditions ORDER BY 1, 2")?;
    let renditions = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut s = c.prepare(
        "SELECT track_id, progressive_key FROM track_renditions
         WHERE progressive_key IS NOT NULL ORDER BY 1, 2",
    )?;
    let progressive = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let busy = crate::jobs::store::pending_track_ids(c, crate::jobs::JobKind::PackageHls).map_err(
        |e| match e {
            crate::jobs::JobError::Db(e) => LibraryError::Db(e),
            other => LibraryError::Enqueue(other),
        },
    )?;
    Ok(Rows {
        tracks,
        renditions,
        progressive,
        busy,
    })
}
