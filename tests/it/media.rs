//! The origin (`/media/`) and the stream-URL API against real parts: tracks generated with
//! ffmpeg and uploaded over HTTP, a fake HLS tree in the real blob store, a player that
//! resolves relative playlist URIs with `url::Url::join`, and, in CDN mode, a Bunny-like edge
//! on loopback that checks tokens with `veza::signing::bunny::verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use serde_json::Value;
use veza::accounts::Role;
use veza::config::Config;
use veza::http::media::ORIGIN_SECRET_HEADER;
use veza::signing::SignRequest;
use veza::storage::BlobKey;

use crate::helpers::{
    TestApp, assert_envelope, header, hex_sha, play, require_tool, spawn_app_behind_edge,
    spawn_app_with, user_with_token,
};

/// The public URL the app signs with; tests swap it for the real address (port 0 is only
/// known after the config is built).
const PUBLIC: &str = "http://veza.invalid";
const SECRET: &str = "edge-secret-0123456789abcdefghij";

fn config(c: &mut Config) {
    c.server.public_url = url::Url::parse(PUBLIC).unwrap();
    // These tests lay out HLS trees themselves (`fake_hls`); a real packaging job racing them
    // would replace the tree. Real packaging is played in hls.rs.
    c.hls.enabled = false;
    c.cdn.bunny.origin_secret = veza::config::Secret::new(SECRET);
}

fn now() -> u64 {
    veza::clock::now() as u64
}

/// A tone with tags and a cover picture, made with ffmpeg.
fn tone(dir: &Path, name: &str, freq: u32, cover: &str) -> PathBuf {
    require_tool("ffmpeg");
    let run = |args: &[&str]| {
        let out = Command::new("ffmpeg")
            .current_dir(dir)
            .args(["-v", "error", "-y"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ffmpeg {args:?}: {out:?}");
    };
    let png = format!("{cover}.png");
    if !dir.join(&png).exists() {
        let src = format!("color=c={cover}:s=32x32");
        run(&["-f", "lavfi", "-i", &src, "-frames:v", "1", &png]);
    }
    let src = format!("sine=frequency={freq}:duration=2");
    run(&[
        "-f",
        "lavfi",
        "-i",
        &src,
        "-i",
        &png,
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        "-id3v2_version",
        "3",
        "-metadata",
        "title=Origin Tone",
        name,
    ]);
    dir.join(name)
}

/// Uploads with a visibility; asserts 201 and returns the track.
async fn upload(app: &TestApp, token: &str, file: &Path, visibility: &str) -> Value {
    let r = app
        .upload_with(token, file, &[("visibility", visibility)])
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// The internal blob keys of a track (the API does not show them).
async fn keys(app: &TestApp, id: &str) -> veza::library::Track {
    let id: veza::library::TrackId = id.parse().unwrap();
    app.state
        .db
        .call(move |c| veza::library::store::get(c, &id))
        .await
        .unwrap()
        .unwrap()
}

async fn sql(app: &TestApp, statement: &str, params: Vec<String>) {
    let statement = statement.to_owned();
    app.state
        .db
        .call(move |c| {
            c.execute(&statement, rusqlite::params_from_iter(params))?;
            Ok::<_, veza::db::DbError>(())
        })
        .await
        .unwrap();
    // A write behind the API's back: do what every API write does after its commit.
    app.state.caches.tracks_changed();
}

/// Deterministic filler bytes.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn put(app: &TestApp, key: &str, body: Vec<u8>) {
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]);
    app.state
        .store
        .put(&BlobKey::parse(key).unwrap(), Box::pin(stream), u64::MAX)
        .await
        .unwrap();
}

/// A small packaged-looking tree under `tracks/{id}/hls/` (master, one media playlist, an init
/// segment and three segments named by their SHA-256), and `hls_key` set; returns every key.
async fn fake_hls(app: &TestApp, id: &str) -> Vec<String> {
    let dir = format!("tracks/{id}/hls");
    let init = filler(1, 700);
    let init_name = format!("{}.mp4", hex_sha(&init));
    put(app, &format!("{dir}/seg/{init_name}"), init).await;
    let mut media = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"seg/{init_name}\"\n"
    );
    let mut keys = vec![format!("{dir}/seg/{init_name}")];
    for i in 0..3 {
        let seg = filler(10 + i, 20_000 + i as usize);
        let name = format!("{}.m4s", hex_sha(&seg));
        put(app, &format!("{dir}/seg/{name}"), seg).await;
        media.push_str(&format!("#EXTINF:6.000,\nseg/{name}\n"));
        keys.push(format!("{dir}/seg/{name}"));
    }
    media.push_str("#EXT-X-ENDLIST\n");
    put(app, &format!("{dir}/128k.m3u8"), media.into_bytes()).await;
    let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-STREAM-INF:BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS=\"mp4a.40.2\"\n128k.m3u8\n";
    put(
        app,
        &format!("{dir}/master.m3u8"),
        master.as_bytes().to_vec(),
    )
    .await;
    keys.push(format!("{dir}/128k.m3u8"));
    keys.push(format!("{dir}/master.m3u8"));
    sql(
        app,
        "UPDATE tracks SET hls_key = ?1 WHERE id = ?2",
        vec![format!("{dir}/master.m3u8"), id.to_owned()],
    )
    .await;
    keys
}

/// `GET /api/v1/tracks/{id}/stream{query}`, anonymous unless `token`.
async fn stream_url(
    app: &TestApp,
    id: &str,
    query: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut r = app
        .client
        .get(app.url(&format!("/api/v1/tracks/{id}/stream{query}")));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn signed(app: &TestApp, id: &str, query: &str, token: Option<&str>) -> Value {
    let resp = stream_url(app, id, query, token).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(resp.headers()["cache-control"], "private, no-store");
    resp.json().await.unwrap()
}

/// The object path of a signed URL, after its token segment (the expiry may differ between
/// two URLs signed a second apart).
fn object_of(url: &str) -> &str {
    let at = url
        .find("/tracks/")
        .or_else(|| url.find("/originals/"))
        .unwrap();
    &url[at..]
}

#[tokio::test]
async fn an_original_streams_with_ranges_validators_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let file = tone(dir.path(), "a.mp3", 440, "red");
    let bytes = std::fs::read(&file).unwrap();
    let size = bytes.len();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = upload(&app, &ed, &file, "public").await;
    let id = t["id"].as_str().unwrap();
    let sha = t["sha256"].as_str().unwrap();

    let s = signed(&app, id, "?format=original", None).await;
    assert_eq!(s["provider"], "local");
    assert_eq!(s["fallback"], false);
    let url = s["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{PUBLIC}/media/vzt.")), "{url}");
    assert!(url.ends_with(&format!(
        "/originals/{}/{}/{sha}.mp3",
        &sha[..2],
        &sha[2..4]
    )));
    let exp = s["expires_at"].as_u64().unwrap();
    assert!((now() + 3500..=now() + 3600).contains(&exp), "{exp}");
    // No HLS yet: the default is the original too.
    let default = signed(&app, id, "", None).await;
    assert_eq!(object_of(default["url"].as_str().unwrap()), object_of(url));
    let url = app.reach(url);

    let c = &app.client;
    let full = c.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(header(&full, "content-type"), "audio/mpeg");
    assert_eq!(header(&full, "cache-control"), "public, max-age=31536000");
    assert_eq!(header(&full, "etag"), format!("\"{sha}\""));
    assert_eq!(header(&full, "accept-ranges"), "bytes");
    assert_eq!(header(&full, "cdn-tag"), format!("track-{id}"));
    assert_eq!(header(&full, "content-length"), size.to_string());
    assert!(full.headers().get("x-request-id").is_some());
    assert_eq!(full.bytes().await.unwrap().to_vec(), bytes);

    let part = c
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 100-199/{size}")
    );
    assert_eq!(header(&part, "content-length"), "100");
    assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[100..200]);
    let tail = c
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().to_vec(), bytes[size - 10..]);
    let from = c
        .get(&url)
        .header("range", format!("bytes={}-", size - 5))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&from, "content-range"),
        format!("bytes {}-{}/{size}", size - 5, size - 1)
    );

    let beyond = c
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&beyond, "content-range"), format!("bytes */{size}"));
    assert_envelope(beyond, 416, "range_not_satisfiable").await;

    let etag = format!("\"{sha}\"");
    let same = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 304);
    assert_eq!(header(&same, "etag"), etag);
    assert_eq!(header(&same, "cache-control"), "public, max-age=31536000");
    assert!(same.bytes().await.unwrap().is_empty());
    let other = c
        .get(&url)
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    // If-Range: a stale validator gets the whole object, the current one gets the range.
    let stale = c
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), size);
    let fresh = c
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 206);
    assert_eq!(fresh.bytes().await.unwrap().to_vec(), bytes[..10]);

    let head = c.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for h in [
        "content-type",
        "cache-control",
        "etag",
        "accept-ranges",
        "cdn-tag",
    ] {
        let get = c.get(&url).send().await.unwrap();
        assert_eq!(head.headers().get(h), get.headers().get(h), "{h}");
    }
    assert_eq!(header(&head, "content-length"), size.to_string());
    assert!(head.bytes().await.unwrap().is_empty());
    let head_range = c
        .head(&url)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(head_range.status(), 206);
    assert_eq!(
        header(&head_range, "content-range"),
        format!("bytes 0-0/{size}")
    );

    // redirect=1: 302 to the same kind of URL.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(app.url(&format!(
            "/api/v1/tracks/{id}/stream?format=original&redirect=1"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = header(&r, "location");
    assert!(loc.starts_with(&format!("{PUBLIC}/media/vzt.")), "{loc}");
    assert_eq!(app.origin_get(loc).await.status(), 200);

    // The cover, pulled by the CDN with the origin secret.
    let cover = keys(&app, id).await.cover_key.unwrap();
    let r = c
        .get(app.url(&format!("/media/{cover}")))
        .header(ORIGIN_SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert_eq!(header(&r, "cache-control"), "public, max-age=31536000");
    assert_eq!(header(&r, "cdn-tag"), format!("track-{id}"));
    assert!(header(&r, "etag").len() == 66);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        std::fs::read(dir.path().join("red.png")).unwrap()
    );

    for bad in ["?format=mp3", "?redirect=maybe", "?x=1"] {
        let r = stream_url(&app, id, bad, None).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_player_follows_the_hls_tree_through_relative_uris() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = upload(&app, &ed, &tone(dir.path(), "h.mp3", 330, "blue"), "public").await;
    let id = t["id"].as_str().unwrap();

    let r = stream_url(&app, id, "?format=hls", None).await;
    assert_envelope(r, 409, "hls_not_ready").await;

    fake_hls(&app, id).await;
    let s = signed(&app, id, "", None).await;
    let url = s["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{PUBLIC}/media/vzt.")) && url.contains(".d3."),
        "{url}"
    );
    assert!(
        url.ends_with(&format!("/tracks/{id}/hls/master.m3u8")),
        "{url}"
    );
    let explicit = signed(&app, id, "?format=hls", None).await;
    assert_eq!(object_of(explicit["url"].as_str().unwrap()), object_of(url));
    let fetched = play(&app.client, &app.reach(url), id).await;
    assert_eq!(fetched.len(), 6, "{fetched:?}");
    // Every object was reached through the one token in the master's URL.
    let token = url.split('/').nth(4).unwrap();
    assert!(fetched.iter().all(|u| u.contains(token)), "{fetched:?}");

    // format=original still gives the file.
    let o = signed(&app, id, "?format=original", None).await;
    assert!(o["url"].as_str().unwrap().contains("/originals/"));
    app.stop().await;
}

#[tokio::test]
async fn tampered_expired_foreign_and_out_of_scope_tokens_get_403() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let a = upload(&app, &ed, &tone(dir.path(), "a.mp3", 440, "red"), "public").await;
    let b = upload(&app, &ed, &tone(dir.path(), "b.mp3", 550, "red"), "public").await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    fake_hls(&app, a).await;
    let b_keys = fake_hls(&app, b).await;
    let master = app.reach(signed(&app, a, "", None).await["url"].as_str().unwrap());
    let c = &app.client;
    assert_eq!(c.get(&master).send().await.unwrap().status(), 200);

    // Tampered: one character of the MAC changed.
    let mac_end = master.find("/tracks/").unwrap() - 1;
    let mut t = master.clone().into_bytes();
    t[mac_end] = if t[mac_end] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(t).unwrap();
    assert_envelope(c.get(&tampered).send().await.unwrap(), 403, "token_invalid").await;

    // The expiry edited forward.
    let exp: String = master
        .split("vzt.")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let later = master.replacen(
        &format!("vzt.{exp}"),
        &format!("vzt.{}", exp.parse::<u64>().unwrap() + 1),
        1,
    );
    assert_envelope(c.get(&later).send().await.unwrap(), 403, "token_invalid").await;

    // Expired: signed with the app's own key, a minute ago.
    let local = app.state.cdn.local().unwrap();
    let mut req = SignRequest::new(format!("/tracks/{a}/hls/master.m3u8"), now() - 120);
    req.expires = Some(now() - 60);
    req.token_path = Some(format!("/tracks/{a}/hls/"));
    let old = veza::signing::Signer::sign(&*local, &req).unwrap().url;
    assert_envelope(app.origin_get(&old).await, 403, "token_expired").await;

    // Another track's token, on this track's objects.
    for key in &b_keys {
        let foreign = master.replace(&format!("/tracks/{a}/hls/master.m3u8"), &format!("/{key}"));
        assert_envelope(c.get(&foreign).send().await.unwrap(), 403, "token_invalid").await;
    }
    // Outside the token's directory: the original of the same track.
    let orig = keys(&app, a).await.original_key;
    let outside = master.replace(&format!("/tracks/{a}/hls/master.m3u8"), &format!("/{orig}"));
    assert_envelope(c.get(&outside).send().await.unwrap(), 403, "token_invalid").await;
    // A file token used for another file.
    let file_url = app.reach(
        signed(&app, a, "?format=original", None).await["url"]
            .as_str()
            .unwrap(),
    );
    let moved = file_url.replace(orig.as_str(), b_keys[0].as_str());
    assert_envelope(c.get(&moved).send().await.unwrap(), 403, "token_invalid").await;

    // No token, a wrong origin secret, or a bare path: 403 with the envelope.
    let bare = app.url(&format!("/media/{orig}"));
    assert_envelope(c.get(&bare).send().await.unwrap(), 403, "token_missing").await;
    let wrong = c
        .get(&bare)
        .header(ORIGIN_SECRET_HEADER, "guess")
        .send()
        .await
        .unwrap();
    assert_envelope(wrong, 403, "token_missing").await;
    let right = c
        .get(&bare)
        .header(ORIGIN_SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(header(&right, "cache-control"), "public, max-age=31536000");
    // A Bunny token when this origin does not check them.
    let bunny = app.url(&format!("/media/{orig}?token=x&expires=1"));
    assert_envelope(
        c.get(&bunny).send().await.unwrap(),
        403,
        "token_not_accepted",
    )
    .await;

    // Unknown shapes and traversal are 404 whatever the credentials.
    for p in [
        "signing.key".to_owned(),
        "veza.db".to_owned(),
        format!("tracks/{a}/hls/../../../signing.key"),
        format!("tracks/{a}/hls/%2e%2e/%2e%2e/x"),
        format!("tracks/{a}/notes.txt"),
        ".tmp/x".to_owned(),
    ] {
        let r = c
            .get(app.url(&format!("/media/{p}")))
            .header(ORIGIN_SECRET_HEADER, SECRET)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{p}");
    }
    app.stop().await;
}

#[tokio::test]
async fn private_tracks_need_their_own_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let public = upload(&app, &ed, &tone(dir.path(), "p.mp3", 440, "red"), "public").await;
    let private = upload(
        &app,
        &ed,
        &tone(dir.path(), "q.mp3", 660, "green"),
        "private",
    )
    .await;
    let (pubid, privid) = (
        public["id"].as_str().unwrap(),
        private["id"].as_str().unwrap(),
    );
    fake_hls(&app, pubid).await;
    let priv_keys = fake_hls(&app, privid).await;
    let c = &app.client;

    // Anonymous: as elsewhere in the API, a private track does not exist; nothing is signed.
    let r = stream_url(&app, privid, "", None).await;
    assert_envelope(r, 404, "not_found").await;
    let r = c
        .get(app.url(&format!("/api/v1/tracks/{privid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The public track's valid URL, pointed at the private track's objects.
    let pub_master = app.reach(signed(&app, pubid, "", None).await["url"].as_str().unwrap());
    for key in &priv_keys {
        let u = pub_master.replace(
            &format!("/tracks/{pubid}/hls/master.m3u8"),
            &format!("/{key}"),
        );
        assert_eq!(c.get(&u).send().await.unwrap().status(), 403, "{key}");
    }
    // A broader directory token (as `veza sign --token-path /tracks/` makes) opens public
    // tracks but never a private one.
    let local = app.state.cdn.local().unwrap();
    let broad = |path: &str| {
        let mut r = SignRequest::new(path.to_owned(), now());
        r.token_path = Some("/tracks/".into());
        app.reach(&veza::signing::Signer::sign(&*local, &r).unwrap().url)
    };
    let ok = c
        .get(broad(&format!("/tracks/{pubid}/hls/master.m3u8")))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let no = c
        .get(broad(&format!("/tracks/{privid}/hls/master.m3u8")))
        .send()
        .await
        .unwrap();
    assert_envelope(no, 403, "private_track").await;

    // An editor gets a URL, and the whole tree plays with it.
    let s = signed(&app, privid, "", Some(&ed)).await;
    play(c, &app.reach(s["url"].as_str().unwrap()), privid).await;
    let o = signed(&app, privid, "?format=original", Some(&ed)).await;
    assert_eq!(
        app.origin_get(o["url"].as_str().unwrap()).await.status(),
        200
    );
    // The CDN (origin secret) pulls private objects: the edge checked the viewer's token.
    let r = c
        .get(app.url(&format!("/media/{}", priv_keys[0])))
        .header(ORIGIN_SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn taken_down_tracks_answer_451_everywhere_and_deleted_ones_404() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // Two tracks sharing one cover (same picture, so the same content-addressed key).
    let a = upload(&app, &ed, &tone(dir.path(), "a.mp3", 440, "red"), "public").await;
    let b = upload(
        &app,
        &ed,
        &tone(dir.path(), "b.mp3", 550, "red"),
        "unlisted",
    )
    .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let hls = fake_hls(&app, a).await;
    let (ka, kb) = (keys(&app, a).await, keys(&app, b).await);
    let cover = ka.cover_key.clone().unwrap();
    assert_eq!(
        kb.cover_key.as_ref().map(|k| k.as_str()),
        Some(cover.as_str())
    );
    let c = &app.client;
    let master = app.reach(signed(&app, a, "", None).await["url"].as_str().unwrap());
    let original = app.reach(
        signed(&app, a, "?format=original", None).await["url"]
            .as_str()
            .unwrap(),
    );
    let cover_get = || {
        c.get(app.url(&format!("/media/{cover}")))
            .header(ORIGIN_SECRET_HEADER, SECRET)
            .send()
    };
    let cover_tag = header(&cover_get().await.unwrap(), "cdn-tag").to_owned();
    assert!(cover_tag.contains(&format!("track-{a}")) && cover_tag.contains(&format!("track-{b}")));

    sql(
        &app,
        "UPDATE tracks SET status = 'taken_down' WHERE id = ?1",
        vec![a.to_owned()],
    )
    .await;
    // Every object of the track, through URLs that were valid a moment ago.
    let mut urls: Vec<String> = hls
        .iter()
        .map(|k| master.replace(&format!("/tracks/{a}/hls/master.m3u8"), &format!("/{k}")))
        .collect();
    urls.push(original.clone());
    for u in &urls {
        let r = c.get(u).send().await.unwrap();
        assert_eq!(header(&r, "cdn-tag"), format!("track-{a}"));
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_envelope(r, 451, "taken_down").await;
    }
    // Also to the CDN, and to HEAD.
    let r = c
        .get(app.url(&format!("/media/{}", ka.original_key)))
        .header(ORIGIN_SECRET_HEADER, SECRET)
        .send()
        .await
        .unwrap();
    assert_envelope(r, 451, "taken_down").await;
    assert_eq!(c.head(&master).send().await.unwrap().status(), 451);
    for q in ["", "?format=original", "?format=hls"] {
        assert_envelope(stream_url(&app, a, q, None).await, 451, "taken_down").await;
        assert_envelope(stream_url(&app, a, q, Some(&ed)).await, 451, "taken_down").await;
    }
    // The shared cover still serves through the other track, until it is taken down too.
    assert_eq!(cover_get().await.unwrap().status(), 200);
    sql(
        &app,
        "UPDATE tracks SET status = 'taken_down' WHERE id = ?1",
        vec![b.to_owned()],
    )
    .await;
    assert_envelope(cover_get().await.unwrap(), 451, "taken_down").await;

    // Restored, then deleted: the old URL is a 404.
    sql(
        &app,
        "UPDATE tracks SET status = 'ready' WHERE id = ?1",
        vec![a.to_owned()],
    )
    .await;
    assert_eq!(c.get(&original).send().await.unwrap().status(), 200);
    let del = c
        .delete(app.url(&format!("/api/v1/tracks/{a}")))
        .bearer_auth(&ed)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_envelope(c.get(&original).send().await.unwrap(), 404, "not_found").await;
    assert_envelope(c.get(&master).send().await.unwrap(), 404, "not_found").await;
    assert_envelope(stream_url(&app, a, "", None).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn anonymous_stream_urls_are_rate_limited_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|c| {
        config(c);
        c.stream.rate_limit_per_min = 3;
    })
    .await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = upload(&app, &ed, &tone(dir.path(), "a.mp3", 440, "red"), "public").await;
    let id = t["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(stream_url(&app, id, "", None).await.status(), 200);
    }
    let r = stream_url(&app, id, "", None).await;
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_envelope(r, 429, "rate_limited").await;
    // Signed-in callers are not limited by it.
    for _ in 0..5 {
        assert_eq!(stream_url(&app, id, "", Some(&ed)).await.status(), 200);
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// CDN mode: a Bunny-like edge on loopback.

const BUNNY_KEY: &str = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40";

#[tokio::test]
async fn in_cdn_mode_urls_point_at_the_edge_and_play_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let (app, edge_url) = spawn_app_behind_edge(BUNNY_KEY, SECRET, config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = upload(&app, &ed, &tone(dir.path(), "a.mp3", 440, "red"), "public").await;
    let id = t["id"].as_str().unwrap();
    fake_hls(&app, id).await;

    let s = signed(&app, id, "", None).await;
    assert_eq!(s["provider"], "bunny");
    assert_eq!(s["fallback"], false);
    let url = s["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{edge_url}/bcdn_token=HS256-")),
        "{url}"
    );
    assert!(url.contains("token_path=%2Ftracks%2F"), "{url}");
    assert!(
        url.ends_with(&format!("/tracks/{id}/hls/master.m3u8")),
        "{url}"
    );
    let fetched = play(&app.client, url, id).await;
    assert_eq!(fetched.len(), 6);
    assert!(fetched.iter().all(|u| u.starts_with(&edge_url)));

    // The original, through the edge, with a range.
    let o = signed(&app, id, "?format=original", None).await;
    let ou = o["url"].as_str().unwrap();
    assert!(ou.starts_with(&edge_url), "{ou}");
    let r = app
        .client
        .get(ou)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-type"), "audio/mpeg");
    assert_eq!(header(&r, "cdn-tag"), format!("track-{id}"));

    // A tampered token is refused by the edge.
    let i = url.find("HS256-").unwrap() + 8;
    let mut t = url.as_bytes().to_vec();
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(t).unwrap();
    assert_eq!(
        app.client.get(&tampered).send().await.unwrap().status(),
        403
    );

    // With cdn.bunny.verify_tokens the origin itself accepts the Bunny URL (path after the
    // host, under /media), and refuses the tampered one.
    let direct = url.replacen(&edge_url, &app.url("/media"), 1);
    let r = app.client.get(&direct).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
    let bad = tampered.replacen(&edge_url, &app.url("/media"), 1);
    assert_envelope(
        app.client.get(&bad).send().await.unwrap(),
        403,
        "token_invalid",
    )
    .await;
    app.stop().await;
}

/// `veza_cache_{hits,misses}_total{subsystem="media_bytes"}`.
fn media_cache(app: &TestApp, name: &str) -> u64 {
    let line = format!("veza_cache_{name}_total{{subsystem=\"media_bytes\"}} ");
    let text = app.state.metrics.render().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or_else(|| panic!("{line} missing"), |v| v.parse().unwrap())
}

#[tokio::test]
async fn objects_served_from_memory_answer_exactly_as_from_the_store_and_stay_behind_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(config).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = upload(
        &app,
        &ed,
        &tone(dir.path(), "m.mp3", 350, "green"),
        "public",
    )
    .await;
    let id = t["id"].as_str().unwrap();
    let hls = fake_hls(&app, id).await;
    let master = app.reach(signed(&app, id, "", None).await["url"].as_str().unwrap());
    let url_of =
        |key: &str| master.replace(&format!("/tracks/{id}/hls/master.m3u8"), &format!("/{key}"));
    let c = &app.client;
    let seg_key = &hls[1];
    let seg = c.get(url_of(seg_key)).send().await.unwrap();
    assert_eq!(seg.status(), 200);
    let etag = header(&seg, "etag").to_owned();
    let bytes = seg.bytes().await.unwrap();
    assert_eq!(bytes.len(), 20_000);
    assert_eq!(bytes.as_ref(), filler(10, 20_000).as_slice());

    // From here on the segment comes from memory: the same bytes, ranges and validators.
    let pull = |headers: &[(&str, &str)]| {
        let mut r = c.get(url_of(seg_key));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        async move { r.send().await.unwrap() }
    };
    let text = |url: String| async move { c.get(url).send().await.unwrap().text().await.unwrap() };
    let hits = media_cache(&app, "hits");
    let again = pull(&[]).await;
    assert_eq!(header(&again, "etag"), etag);
    assert_eq!(
        header(&again, "cache-control"),
        "public, max-age=86400, immutable"
    );
    assert_eq!(header(&again, "content-type"), "audio/mp4");
    assert_eq!(again.bytes().await.unwrap(), bytes);
    let part = pull(&[("range", "bytes=100-199")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-range"), "bytes 100-199/20000");
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(100..200));
    let tail = pull(&[("range", "bytes=-10")]).await;
    assert_eq!(tail.bytes().await.unwrap(), bytes.slice(19_990..));
    let stale_range = pull(&[("range", "bytes=0-9"), ("if-range", "\"not-it\"")]).await;
    assert_eq!(stale_range.status(), 200, "a stale If-Range sends it all");
    let beyond = pull(&[("range", "bytes=20000-")]).await;
    assert_eq!(header(&beyond, "content-range"), "bytes */20000");
    assert_envelope(beyond, 416, "range_not_satisfiable").await;
    let not_modified = pull(&[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status(), 304);
    let head = c.head(url_of(seg_key)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), "20000");
    assert!(head.bytes().await.unwrap().is_empty());
    assert!(
        media_cache(&app, "hits") >= hits + 7,
        "every answer above came from memory"
    );

    // The gates stand in front of the memory: a tampered token is still a 403.
    let tampered = url_of(seg_key).replacen(".d3.", ".d4.", 1);
    assert_envelope(c.get(&tampered).send().await.unwrap(), 403, "token_invalid").await;

    // A playlist re-written by a re-packaging is served new at once, not from memory.
    let playlist = format!("tracks/{id}/hls/128k.m3u8");
    let old = text(url_of(&playlist)).await;
    assert_eq!(text(url_of(&playlist)).await, old);
    let new = old.replace("#EXT-X-ENDLIST", "#EXT-X-DISCONTINUITY\n#EXT-X-ENDLIST");
    put(&app, &playlist, new.clone().into_bytes()).await;
    // What `mark_packaged` does after its commit (through `sql`'s tracks_changed).
    sql(
        &app,
        "UPDATE tracks SET updated_at = updated_at WHERE id = ?1",
        vec![id.to_owned()],
    )
    .await;
    assert_eq!(text(url_of(&playlist)).await, new);

    // Taken down: the segment in memory is refused like every other object.
    sql(
        &app,
        "UPDATE tracks SET status = 'taken_down' WHERE id = ?1",
        vec![id.to_owned()],
    )
    .await;
    assert_envelope(
        c.get(url_of(seg_key)).send().await.unwrap(),
        451,
        "taken_down",
    )
    .await;
    app.stop().await;
}
