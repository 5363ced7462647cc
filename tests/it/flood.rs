//! The listener-flood harness (benches/flood.rs) in small, so it cannot rot: 50 players for a
//! few seconds on the debug binary, straight and through the caching edge. No errors; through
//! the edge each object reaches the origin once.

#[path = "../../benches/support/flood.rs"]
mod harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_players_get_every_object_and_the_edge_pulls_each_once() {
    crate::helpers::require_tool("ffmpeg");
    for edge in [false, true] {
        let o = harness::Opts {
            veza: env!("CARGO_BIN_EXE_veza").into(),
            players: 50,
            secs: 4,
            tracks: 2,
            track_secs: 20,
            edge,
        };
        let r = harness::run(&o).await;
        eprintln!("{}", r.table(&o));
        assert_eq!(r.errors, 0, "{}", r.table(&o));
        assert!(
            r.segments > 50,
            "players pulled too little: {}",
            r.table(&o)
        );
        if edge {
            assert!(r.edge_objects > 0);
            assert_eq!(r.edge_max_pulls, 1, "{}", r.table(&o));
            // The origin saw the edge's pulls and nothing else on /media/.
            assert_eq!(r.origin_media_requests, r.edge_pulls, "{}", r.table(&o));
        }
    }
}
