//! Listener flood (issue 22): `benches/flood.sh` runs it with the release binary. Env:
//! `VEZA` (binary, default target/release/veza), `FLOOD_PLAYERS` (500), `FLOOD_SECS` (60),
//! `FLOOD_TRACKS` (4), `FLOOD_TRACK_SECS` (60), `FLOOD_EDGE` (`both`, `origin` or `edge`).

#[path = "support/flood.rs"]
mod flood;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this with no argument and
    // must not flood (tests/it/flood.rs is the short run CI makes).
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("flood: run it with `cargo bench --bench flood` or benches/flood.sh");
        return;
    }
    let mode: String = env("FLOOD_EDGE", "both".to_owned());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for edge in [false, true] {
        if (edge && mode == "origin") || (!edge && mode == "edge") {
            continue;
        }
        let o = flood::Opts {
            veza: env("VEZA", "target/release/veza".into()),
            players: env("FLOOD_PLAYERS", 500),
            secs: env("FLOOD_SECS", 60),
            tracks: env("FLOOD_TRACKS", 4),
            track_secs: env("FLOOD_TRACK_SECS", 60),
            edge,
        };
        eprintln!(
            "flood: {} players for {} s {}",
            o.players,
            o.secs,
            if edge {
                "through the edge"
            } else {
                "on the origin"
            }
        );
        let r = rt.block_on(flood::run(&o));
        println!("{}\n", r.table(&o));
    }
}
