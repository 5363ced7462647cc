//! Library listing and search latency at 100k tracks (rows seeded directly), p50/p99 per
//! query shape, against the goals (listing p99 < 20 ms, search p99 < 50 ms).
//! Run: `cargo bench --bench library` (TRACKS=100000 by default).

use std::time::Instant;

use rusqlite::params;
use veza::library::store::{self, Query, Sort};

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this is a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("TRACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100_000 } else { 2_000 });
    let runs = if full { 200 } else { 10 };
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = veza::db::Db::open_and_migrate(dir.path()).unwrap();
    let words = [
        "blue", "red", "night", "river", "love", "dance", "echo", "gold", "rain", "fire", "city",
        "dream",
    ];
    let seeded = Instant::now();
    db.with(|c| {
        let tx = c.transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO tracks (id, title, artist, album, codec, size_bytes, sha256, original_key,
                     content_type, visibility, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'mp3', 1000, ?5, ?6, 'audio/mpeg', ?7, 'ready', ?8, ?8)",
                )
                .unwrap();
            for i in 0..n {
                let w = |k: usize| words[(i / k + k) % words.len()];
                let id = uuid::Uuid::now_v7().to_string();
                st.execute(params![
                    id,
                    format!("{} {} {i}", w(1), w(7)),
                    format!("Artist {}", i % 5000),
                    format!("{} Album {}", w(13), i % 20000),
                    format!("{i:064x}"),
                    format!("originals/{i}"),
                    if i % 10 == 0 { "private" } else { "public" },
                    1_700_000_000 + i as i64,
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    });
    println!(
        "seeded {n} tracks in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let shapes: Vec<(&str, Query)> = vec![
        (
            "list newest, 50",
            Query {
                limit: Some(50),
                ..Query::default()
            },
        ),
        (
            "list by title, 50",
            Query {
                sort: Some(Sort::Title),
                limit: Some(50),
                ..Query::default()
            },
        ),
        (
            "list public only (anonymous), 50",
            Query {
                public_only: true,
                limit: Some(50),
                ..Query::default()
            },
        ),
        (
            "list by artist filter",
            Query {
                artist: Some("Artist 42".into()),
                ..Query::default()
            },
        ),
        (
            "search one word",
            Query {
                q: Some("river".into()),
                limit: Some(50),
                ..Query::default()
            },
        ),
        (
            "search two words",
            Query {
                q: Some("blue night".into()),
                limit: Some(50),
                ..Query::default()
            },
        ),
        (
            "search prefix, public",
            Query {
                q: Some("dre".into()),
                public_only: true,
                limit: Some(50),
                ..Query::default()
            },
        ),
    ];
    println!("{:<36} {:>9} {:>9}", "query", "p50 ms", "p99 ms");
    for (name, q) in shapes {
        let mut times = Vec::with_capacity(runs);
        let mut cursor = None;
        for i in 0..runs {
            let mut q = q.clone();
            // Every other run follows the cursor: deep pages must stay fast too.
            q.cursor = if i % 2 == 1 { cursor.clone() } else { None };
            let t = Instant::now();
            let page = db.with(|c| store::list(c, &q)).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            cursor = page.next_cursor;
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: usize| times[(runs * p / 100).min(runs - 1)];
        println!("{name:<36} {:>9.2} {:>9.2}", pct(50), pct(99));
    }
}
