//! The OpenSubsonic API over a real socket: every way to log in (and the wrong ones), what a
//! listener sees, and streams that are 302s to signed URLs whose bytes are the original's, or
//! a progressive AAC rendition at the asked bitrate; proxied clients, XML, scrobbles and a
//! takedown. (Third-party client libraries drive the same API in `subsonic_clients.rs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};
use serde_json::{Value, json};
use veza::accounts::Role;

use crate::helpers::*;

/// A tagged MP3 tone (192 kbps, stereo).
fn tagged(dir: &Path, name: &str, freq: u32, tags: &[(&str, &str)]) -> PathBuf {
    require_tool("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.current_dir(dir)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={freq}:duration=4"))
        .args(["-ac", "2", "-c:a", "libmp3lame", "-b:a", "192k"]);
    for (k, v) in tags {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(name).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(name)
}

/// How a call proves who it is.
enum Auth<'a> {
    Token(&'a str, &'a str),
    Plain(&'a str, &'a str),
    ApiKey(&'a str),
}

fn auth_params(auth: &Auth<'_>) -> Vec<(String, String)> {
    match auth {
        Auth::Token(u, pw) => {
            let salt = "c0ffee42";
            let t: String = Md5::digest(format!("{pw}{salt}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            vec![
                ("u".into(), (*u).into()),
                ("t".into(), t),
                ("s".into(), salt.into()),
            ]
        }
        Auth::Plain(u, pw) => vec![("u".into(), (*u).into()), ("p".into(), (*pw).into())],
        Auth::ApiKey(k) => vec![("apiKey".into(), (*k).into())],
    }
}

fn rest_url(app: &TestApp, method: &str, auth: &Auth<'_>, params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in auth_params(auth) {
        q.append_pair(&k, &v);
    }
    q.append_pair("v", "1.16.1").append_pair("c", "veza-test");
    for (k, v) in params {
        q.append_pair(k, v);
    }
    app.url(&format!("/rest/{method}?{}", q.finish()))
}

/// A call with `f=json`; returns the `subsonic-response` object (HTTP 200 either way).
async fn rest(app: &TestApp, method: &str, auth: &Auth<'_>, params: &[(&str, &str)]) -> Value {
    let mut all = params.to_vec();
    all.push(("f", "json"));
    let r = app
        .client
        .get(rest_url(app, method, auth, &all))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{method}");
    let v: Value = r.json().await.unwrap();
    let body = v["subsonic-response"].clone();
    assert_eq!(body["version"], "1.16.1");
    assert_eq!(body["type"], "veza");
    assert_eq!(body["openSubsonic"], true);
    body
}

async fn ok(app: &TestApp, method: &str, auth: &Auth<'_>, params: &[(&str, &str)]) -> Value {
    let b = rest(app, method, auth, params).await;
    assert_eq!(b["status"], "ok", "{method} {params:?}: {b}");
    b
}

async fn fails(app: &TestApp, method: &str, auth: &Auth<'_>, params: &[(&str, &str)]) -> u64 {
    let b = rest(app, method, auth, params).await;
    assert_eq!(b["status"], "failed", "{method}: {b}");
    b["error"]["code"].as_u64().unwrap()
}

/// The body of a GET, as text.
async fn text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The `Location` of a 302 (asserted), fetched with `no_follow`.
async fn location(app: &TestApp, no_follow: &reqwest::Client, url: &str) -> String {
    let r = no_follow.get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{url}: {:?}", r.text().await);
    assert_eq!(r.headers()["cache-control"], "no-store");
    app.reach(r.headers()["location"].to_str().unwrap())
}

fn ffprobe_audio(path: &Path) -> (String, f64) {
    let out = Command::new(require_tool("ffprobe"))
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
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codec = v["streams"][0]["codec_name"].as_str().unwrap().to_owned();
    let kbps = v["streams"][0]["bit_rate"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1000.0;
    (codec, kbps)
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_log_in_browse_and_play_through_signed_redirects() {
    let app = spawn_app_with(|c| c.hls.ladder_kbps = vec![64, 128]).await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let dir = tempfile::tempdir().unwrap();
    let album = [
        ("album", "Blue Hours"),
        ("album_artist", "Ana Lu"),
        ("genre", "Jazz"),
        ("date", "2021"),
    ];
    let f1 = tagged(
        dir.path(),
        "one.mp3",
        440,
        &[
            &album[..],
            &[("title", "Dawn"), ("artist", "Ana Lu"), ("track", "1")],
        ]
        .concat(),
    );
    let f2 = tagged(
        dir.path(),
        "two.mp3",
        550,
        &[
            &album[..],
            &[
                ("title", "Dusk"),
                ("artist", "Ana Lu feat. Bo"),
                ("track", "2"),
            ],
        ]
        .concat(),
    );
    let f3 = tagged(
        dir.path(),
        "three.mp3",
        660,
        &[
            ("title", "Secret"),
            ("artist", "Hidden Hand"),
            ("album", "Vault"),
        ],
    );
    let f4 = tagged(
        dir.path(),
        "four.mp3",
        770,
        &[
            ("title", "Link only"),
            ("artist", "Quiet One"),
            ("album", "Side"),
        ],
    );
    let mut ids = Vec::new();
    for (f, vis) in [
        (&f1, "public"),
        (&f2, "public"),
        (&f3, "private"),
        (&f4, "unlisted"),
    ] {
        let r = app.upload_with(&admin, f, &[("visibility", vis)]).await;
        assert_eq!(r.status(), 201);
        let t: Value = r.json().await.unwrap();
        let id = t["id"].as_str().unwrap().to_owned();
        let t = app.wait_ready(&admin, &id).await;
        if f == &f2 {
            assert_eq!(t["album_artist"], "Ana Lu");
            assert_eq!(t["genre"], "Jazz");
            assert_eq!(t["year"], 2021);
        }
        ids.push(id);
    }

    // A listener account with an app password, made through the API.
    let r = app
        .post_json(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "kim", "password": "kims-login-password", "role": "listener"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let kim_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post_json(
            &format!("/api/v1/users/{kim_id}/app-password"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let pw = r.json::<Value>().await.unwrap()["app_password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pw.len() >= 20);
    let kim = Auth::Token("kim", &pw);

    // Every way in, and the wrong ones.
    ok(&app, "ping", &kim, &[]).await;
    ok(&app, "ping.view", &Auth::Plain("kim", &pw), &[]).await;
    let enc: String = pw.bytes().map(|b| format!("{b:02x}")).collect();
    ok(
        &app,
        "ping",
        &Auth::Plain("kim", &format!("enc:{enc}")),
        &[],
    )
    .await;
    ok(&app, "ping", &Auth::ApiKey(&admin), &[]).await;
    assert_eq!(
        fails(&app, "ping", &Auth::Token("kim", "wrong-password"), &[]).await,
        40
    );
    assert_eq!(
        fails(
            &app,
            "ping",
            &Auth::Plain("kim", "kims-login-password"),
            &[]
        )
        .await,
        40,
        "the login password is not an app password"
    );
    assert_eq!(
        fails(&app, "ping", &Auth::Token("nobody", &pw), &[]).await,
        40
    );
    assert_eq!(
        fails(&app, "ping", &Auth::ApiKey("vz_not-a-real-token"), &[]).await,
        44
    );
    assert_eq!(
        fails(&app, "ping", &Auth::ApiKey(&admin), &[("u", "kim")]).await,
        43
    );
    let r: Value = app
        .client
        .get(app.url("/rest/ping?f=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["subsonic-response"]["error"]["code"], 10);
    assert_eq!(fails(&app, "getSong", &kim, &[]).await, 10);
    assert_eq!(fails(&app, "noSuchMethod", &kim, &[]).await, 0);

    // The listener sees public tracks; the unlisted one by id only; never the private one.
    let artists = ok(&app, "getArtists", &kim, &[]).await;
    let names: Vec<String> = artists["artists"]["index"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["artist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        names,
        ["Ana Lu"],
        "album artist first; nothing private or unlisted"
    );
    let everything = ok(&app, "getArtists", &Auth::ApiKey(&admin), &[])
        .await
        .to_string();
    assert!(everything.contains("Hidden Hand") && everything.contains("Quiet One"));
    assert_eq!(
        ok(&app, "getSong", &kim, &[("id", &ids[3])]).await["song"]["title"],
        "Link only"
    );
    // ReplayGain measured at ingest; both album tracks (one by "Ana Lu feat. Bo", album
    // artist "Ana Lu") are gated as one album.
    let mut album_gains = Vec::new();
    for id in &ids[..2] {
        let g = ok(&app, "getSong", &kim, &[("id", id)]).await["song"]["replayGain"].clone();
        assert!(g["trackGain"].as_f64().unwrap().abs() < 30.0, "{g}");
        assert!(
            (0.001..=1.5).contains(&g["trackPeak"].as_f64().unwrap()),
            "{g}"
        );
        album_gains.push(g["albumGain"].as_f64().unwrap());
    }
    assert_eq!(album_gains[0], album_gains[1]);
    assert_eq!(fails(&app, "getSong", &kim, &[("id", &ids[2])]).await, 70);
    assert_eq!(fails(&app, "stream", &kim, &[("id", &ids[2])]).await, 70);

    // Artist → album → songs, in track order, with ids that are not integers.
    let artist_id = artists["artists"]["index"][0]["artist"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(artist_id.starts_with("ar-"));
    let artist = ok(&app, "getArtist", &kim, &[("id", &artist_id)]).await;
    assert_eq!(artist["artist"]["albumCount"], 1);
    let album_id = artist["artist"]["album"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(album_id.starts_with("al-"));
    let album = ok(&app, "getAlbum", &kim, &[("id", &album_id)]).await;
    assert_eq!(album["album"]["songCount"], 2);
    assert_eq!(album["album"]["year"], 2021);
    let titles: Vec<&str> = album["album"]["song"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Dawn", "Dusk"]);
    let found = ok(&app, "search3", &kim, &[("query", "dusk")]).await;
    assert_eq!(found["searchResult3"]["song"][0]["id"], ids[1].as_str());
    assert_eq!(found["searchResult3"]["song"].as_array().unwrap().len(), 1);
    let nothing = ok(&app, "search3", &kim, &[("query", "secret")]).await;
    assert_eq!(
        nothing["searchResult3"]["song"]
            .as_array()
            .map_or(0, Vec::len),
        0
    );

    // The XML form (the default) says the same in the Subsonic namespace.
    let xml = text(
        &app.client,
        &rest_url(&app, "getAlbum", &kim, &[("id", &album_id)]),
    )
    .await;
    assert!(
        xml.contains(r#"<subsonic-response xmlns="http://subsonic.org/restapi" "#)
            && xml.contains(r#" status="ok""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"title="Dawn""#) && xml.contains(r#"songCount="2""#),
        "{xml}"
    );

    // stream: a 302 to a signed URL whose bytes are the original's; Range works there.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let original = std::fs::read(&f1).unwrap();
    let signed = location(
        &app,
        &no_follow,
        &rest_url(&app, "stream", &kim, &[("id", &ids[0])]),
    )
    .await;
    assert!(signed.contains("/media/"), "{signed}");
    let bytes = no_follow
        .get(&signed)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex_sha(&bytes), hex_sha(&original));
    let part = no_follow
        .get(&signed)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), original[100..200]);
    let dl = location(
        &app,
        &no_follow,
        &rest_url(&app, "download", &kim, &[("id", &ids[0])]),
    )
    .await;
    assert_eq!(dl, signed, "the same young URL for the original");

    // maxBitRate below the original's: the progressive AAC rung of 64 kbps.
    let low = location(
        &app,
        &no_follow,
        &rest_url(
            &app,
            "stream",
            &kim,
            &[("id", &ids[0]), ("maxBitRate", "64")],
        ),
    )
    .await;
    assert!(low.contains(".m4a"), "{low}");
    let aac = no_follow.get(&low).send().await.unwrap();
    assert_eq!(aac.status(), 200);
    assert_eq!(aac.headers()["content-type"], "audio/mp4");
    let path = dir.path().join("low.m4a");
    std::fs::write(&path, aac.bytes().await.unwrap()).unwrap();
    let (codec, kbps) = ffprobe_audio(&path);
    assert_eq!(codec, "aac");
    assert!((40.0..=80.0).contains(&kbps), "{kbps} kbps");
    let raw = location(
        &app,
        &no_follow,
        &rest_url(
            &app,
            "stream",
            &kim,
            &[("id", &ids[0]), ("maxBitRate", "64"), ("format", "raw")],
        ),
    )
    .await;
    assert_eq!(raw, signed);
    let hls = location(
        &app,
        &no_follow,
        &rest_url(&app, "hls.m3u8", &kim, &[("id", &ids[0])]),
    )
    .await;
    let master = text(&no_follow, &hls).await;
    assert!(
        master.starts_with("#EXTM3U") && master.contains("64k.m3u8"),
        "{master}"
    );

    // DSub does not follow redirects: it gets the bytes (ranges too), with no token in sight.
    let mut q = rest_url(&app, "stream", &kim, &[("id", &ids[0])]);
    q = q.replace("c=veza-test", "c=DSub");
    let proxied = no_follow.get(&q).send().await.unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(hex_sha(&proxied.bytes().await.unwrap()), hex_sha(&original));
    let part = no_follow
        .get(&q)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);

    // Plays are counted per user and in total.
    ok(&app, "scrobble", &kim, &[("id", &ids[0])]).await;
    ok(
        &app,
        "scrobble",
        &kim,
        &[("id", &ids[0]), ("submission", "false")],
    )
    .await;
    assert_eq!(
        ok(&app, "getSong", &kim, &[("id", &ids[0])]).await["song"]["playCount"],
        1
    );
    let t = app
        .get_json(&format!("/api/v1/tracks/{}", ids[0]), Some(&admin))
        .await;
    assert_eq!(t["play_count"], 1);
    assert!(t["last_played_at"].is_i64());

    // A listener's API token cannot upload; it may make its own app password only.
    let token = veza::accounts::new_api_token();
    let (hash, uid) = (veza::accounts::secret_hash(&token), kim_id.clone());
    app.state
        .db
        .call(move |c| veza::accounts::store::create_token(c, &uid, "kim", &hash, 0, None))
        .await
        .unwrap();
    // Its own client: the server refuses before reading the body and closes that connection.
    let refused = upload_to(&reqwest::Client::new(), &app.url(""), &token, &f1, &[]).await;
    assert_eq!(refused.status(), 403);
    let admin_id = app.get_json("/api/v1/me", Some(&admin)).await["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !admin_id.is_empty() {
        assert_eq!(
            app.post_json(
                &format!("/api/v1/users/{admin_id}/app-password"),
                Some(&token),
                &json!({})
            )
            .await
            .status(),
            403
        );
    }
    assert_eq!(
        app.post_json(
            &format!("/api/v1/users/{kim_id}/app-password"),
            Some(&token),
            &json!({})
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        fails(&app, "ping", &kim, &[]).await,
        40,
        "a new app password replaces the old one"
    );

    // A takedown: stream is an error at once, and the URL handed out before answers 451.
    let r = app
        .post_json(
            &format!("/api/v1/tracks/{}/takedown", ids[0]),
            Some(&admin),
            &json!({"reason": "dmca"}),
        )
        .await;
    assert!(r.status().is_success());
    assert_eq!(
        fails(&app, "stream", &Auth::ApiKey(&admin), &[("id", &ids[0])]).await,
        70
    );
    assert_eq!(no_follow.get(&signed).send().await.unwrap().status(), 451);
    app.stop().await;
}
