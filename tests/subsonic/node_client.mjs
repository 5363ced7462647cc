// Veza's /rest/ API as the `subsonic-api` npm package drives it (GET and form POST, salt+token
// and apiKey auth, f=json). Browses artists → album → songs, searches, round-trips a playlist,
// stars, and plays a song by letting fetch follow the 302 to the signed URL. Inputs: the scene
// file named by VEZA_SUBSONIC_SCENE. Every JSON answer is recorded for validate.py.
import { createHash } from "node:crypto";
import { appendFileSync, readFileSync } from "node:fs";
import { SubsonicAPI } from "subsonic-api";

const CLIENT = "subsonic-api";
const AUTH_KEYS = new Set(["u", "t", "s", "p", "apiKey", "c", "v", "f"]);

if (!process.env.VEZA_SUBSONIC_SCENE) {
  console.error("VEZA_SUBSONIC_SCENE is not set: run this through tests/it/subsonic_clients.rs");
  process.exit(1);
}
const scene = JSON.parse(readFileSync(process.env.VEZA_SUBSONIC_SCENE, "utf8"));
const tracks = scene.tracks;

class CheckFailed extends Error {}
const expect = (cond, msg) => {
  if (!cond) throw new CheckFailed(msg);
};
const expectEq = (got, want, what) => {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new CheckFailed(`${what}: got ${g}, want ${w}`);
};
const asList = (v) => (Array.isArray(v) ? v : v == null ? [] : [v]);
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

// fetch that records each JSON answer (method, non-auth params, body) as validate.py expects.
function recordingFetch(input, init = {}) {
  return fetch(input, init).then(async (res) => {
    const type = res.headers.get("content-type") || "";
    if (type.startsWith("application/json")) {
      const url = new URL(typeof input === "string" ? input : input.url);
      const params = {};
      const add = (k, v) => {
        if (!AUTH_KEYS.has(k)) (params[k] ||= []).push(v);
      };
      url.searchParams.forEach((v, k) => add(k, v));
      if (typeof init.body === "string") new URLSearchParams(init.body).forEach((v, k) => add(k, v));
      const method = url.pathname.split("/").pop().replace(/\.view$/, "");
      const body = await res.clone().json();
      const entry = { client: CLIENT, method, params, http_status: res.status, body };
      appendFileSync(scene.record, `${JSON.stringify(entry)}\n`);
    }
    return res;
  });
}

const api = (auth, extra = {}) => new SubsonicAPI({ url: scene.url, auth, fetch: recordingFetch, ...extra });
const tokenApi = api({ username: scene.username, password: scene.app_password });
const postApi = api({ username: scene.username, password: scene.app_password }, { post: true });
const keyApi = api({ apiKey: scene.api_key });
const listenerApi = api({ username: scene.listener.username, password: scene.listener.app_password });

// Throws unless the answer is ok.
function ok(answer, what) {
  expect(answer && answer.status === "ok", `${what}: ${JSON.stringify(answer)}`);
  return answer;
}

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push([name, "ok"]);
  } catch (e) {
    results.push([name, `FAILED: ${e instanceof CheckFailed ? e.message : e.stack}`]);
  }
  console.log(`[${CLIENT}] ${name} → ${results.at(-1)[1]}`);
}

const found = {};

async function browse(client, label) {
  const { artists } = ok(await client.getArtists(), `${label} getArtists`);
  const byName = new Map(asList(artists.index).flatMap((i) => asList(i.artist).map((a) => [a.name, a])));
  for (const t of tracks) expect(byName.has(t.album_artist), `${label}: artist ${t.album_artist} missing`);
  const t = tracks[0];
  const { artist } = ok(await client.getArtist({ id: byName.get(t.album_artist).id }), `${label} getArtist`);
  const album = asList(artist.album).find((a) => a.name === t.album);
  expect(album, `${label}: album ${t.album} not under its artist: ${JSON.stringify(artist)}`);
  const got = ok(await client.getAlbum({ id: album.id }), `${label} getAlbum`).album;
  const want = tracks.filter((x) => x.album === t.album).sort((a, b) => a.track - b.track);
  expectEq(
    asList(got.song).map((s) => [s.id, s.title]),
    want.map((x) => [x.id, x.title]),
    `${label}: songs of ${t.album}`,
  );
  found.album = album.id;
  found.artist = byName.get(t.album_artist).id;
}

async function search() {
  const t = tracks.at(-1);
  const { searchResult3 } = ok(await tokenApi.search3({ query: t.title }), "search3");
  expect(
    asList(searchResult3.song).some((s) => s.id === t.id),
    `search3 ${t.title}: ${JSON.stringify(searchResult3)}`,
  );
  const all = ok(await postApi.search3({ query: "", songCount: 500 }), 'search3 ""').searchResult3;
  expectEq(asList(all.song).map((s) => s.id).sort(), tracks.map((x) => x.id).sort(), 'search3 "" songs');
}

async function playlist() {
  const [a, b] = tracks.map((t) => t.id);
  const made = ok(await postApi.createPlaylist({ name: "Node list", songId: [a, b] }), "createPlaylist").playlist;
  expectEq(asList(made.entry).map((e) => e.id), [a, b], "createPlaylist entries");
  ok(await postApi.updatePlaylist({ playlistId: made.id, songIndexToRemove: [1], comment: "hi" }), "updatePlaylist");
  const pl = ok(await tokenApi.getPlaylist({ id: made.id }), "getPlaylist").playlist;
  expectEq(asList(pl.entry).map((e) => e.id), [a], "entries after removing index 1");
  expectEq(pl.comment, "hi", "comment");
  const lists = ok(await keyApi.getPlaylists(), "getPlaylists (apiKey)").playlists;
  expect(asList(lists.playlist).some((p) => p.id === made.id), "apiKey user does not see the playlist");
  // Playlists are per user: the listener neither lists nor deletes root's.
  const theirs = ok(await listenerApi.getPlaylists(), "listener getPlaylists").playlists;
  expect(!asList(theirs.playlist).some((p) => p.id === made.id), "the listener lists root's playlist");
  const del = await listenerApi.deletePlaylist({ id: made.id });
  expect(del.status === "failed", `the listener deleted root's playlist: ${JSON.stringify(del)}`);
  ok(await tokenApi.getPlaylist({ id: made.id }), "root's playlist after the listener's delete");
  ok(await tokenApi.deletePlaylist({ id: made.id }), "deletePlaylist");
  const gone = await tokenApi.getPlaylist({ id: made.id });
  expectEq(gone.error?.code, 70, "getPlaylist after delete");
}

async function stars() {
  const t = tracks.at(-1);
  ok(await tokenApi.star({ id: t.id, albumId: found.album, artistId: found.artist }), "star");
  const s2 = ok(await keyApi.getStarred2(), "getStarred2").starred2;
  expectEq(asList(s2.song).map((s) => s.id), [t.id], "starred songs");
  expectEq(asList(s2.album).map((a) => a.id), [found.album], "starred albums");
  expectEq(asList(s2.artist).map((a) => a.id), [found.artist], "starred artists");
  // Stars are per user.
  const kims = ok(await listenerApi.getStarred2(), "listener getStarred2").starred2;
  expectEq(asList(kims.song).length + asList(kims.album).length + asList(kims.artist).length, 0, "listener's stars");
  ok(await tokenApi.unstar({ id: t.id, albumId: found.album, artistId: found.artist }), "unstar");
  const after = ok(await tokenApi.getStarred2(), "getStarred2 after unstar").starred2;
  expectEq(asList(after.song).length + asList(after.album).length + asList(after.artist).length, 0, "stars left");
}

async function stream(client, label) {
  for (const t of tracks) {
    const res = await client.stream({ id: t.id });
    expectEq(res.status, 200, `${label} stream status`);
    expect(res.redirected, `${label} stream of ${t.title} was not redirected (bytes from /rest/)`);
    expect(
      res.url.startsWith(scene.redirect_prefix),
      `${label} stream ended at ${res.url}, not under ${scene.redirect_prefix}`,
    );
    const bytes = Buffer.from(await res.arrayBuffer());
    expectEq(sha256(bytes), t.sha256, `${label} stream ${t.title} sha256`);
  }
}

async function plays() {
  // py-sonic (as root) scrobbled the second track once; play counts are per user.
  const t = tracks[1];
  const mine = ok(await tokenApi.getSong({ id: t.id }), "getSong").song;
  expectEq(mine.playCount, 1, "root's playCount");
  const kims = ok(await listenerApi.getSong({ id: t.id }), "listener getSong").song;
  expectEq(kims.playCount ?? 0, 0, "listener's playCount");
}

async function hls() {
  // hls.m3u8 → 302 to the signed master playlist; its URIs resolve against the final URL.
  const res = await tokenApi.hls({ id: tracks[0].id });
  expectEq(res.status, 200, "hls.m3u8 status");
  expect(res.redirected && res.url.startsWith(scene.redirect_prefix), `hls.m3u8 ended at ${res.url}`);
  const master = await res.text();
  expect(master.startsWith("#EXTM3U"), `not a playlist: ${master.slice(0, 80)}`);
  const media = master.split("\n").find((l) => l && !l.startsWith("#"));
  expect(media, `no variant in ${master}`);
  const mediaUrl = new URL(media, res.url);
  const list = await fetch(mediaUrl);
  expectEq(list.status, 200, `media playlist ${mediaUrl}`);
  const text = await list.text();
  const seg = text.split("\n").find((l) => l && !l.startsWith("#"));
  const segRes = await fetch(new URL(seg, mediaUrl));
  expectEq(segRes.status, 200, "first segment");
  expect((await segRes.arrayBuffer()).byteLength > 0, "empty segment");
}

async function apiKey() {
  ok(await keyApi.ping(), "ping with apiKey");
  const bad = await api({ apiKey: "vz_not-a-real-token" }).ping();
  expectEq(bad.error?.code, 44, "ping with a wrong apiKey");
  // apiKey together with u is a conflict (the extension's error 43).
  const url = new URL("rest/ping", scene.url.endsWith("/") ? scene.url : `${scene.url}/`);
  for (const [k, v] of Object.entries({ apiKey: scene.api_key, u: scene.username, f: "json", v: "1.16.1", c: "n" }))
    url.searchParams.set(k, v);
  const both = await (await recordingFetch(url.toString())).json();
  expectEq(both["subsonic-response"].error?.code, 43, "apiKey with u");
}

async function extensions() {
  const { openSubsonicExtensions } = ok(await tokenApi.getOpenSubsonicExtensions(), "getOpenSubsonicExtensions");
  const names = asList(openSubsonicExtensions).map((e) => e.name);
  for (const want of ["apiKeyAuthentication", "formPost"])
    expect(names.includes(want), `extension ${want} not listed: ${names}`);
  const lic = ok(await tokenApi.getLicense(), "getLicense").license;
  expectEq(lic.valid, true, "license valid");
  const wrong = await api({ username: scene.username, password: "nope" }).ping();
  expectEq(wrong.error?.code, 40, "wrong password");
}

await check("getArtists → getArtist → getAlbum (salt+token, GET)", () => browse(tokenApi, "GET"));
await check("getArtists → getArtist → getAlbum (form POST)", () => browse(postApi, "POST"));
await check("getArtists → getArtist → getAlbum (apiKey)", () => browse(keyApi, "apiKey"));
await check("search3", search);
await check("playlist round-trip", playlist);
await check("star/getStarred2/unstar", stars);
await check("stream (302, original sha256)", () => stream(tokenApi, "token"));
await check("stream (apiKey, 302, original sha256)", () => stream(keyApi, "apiKey"));
await check("hls.m3u8 (302, master → media → segment)", hls);
await check("per-user play counts (scrobble)", plays);
await check("apiKey auth (44, 43)", apiKey);
await check("getOpenSubsonicExtensions, getLicense, 40", extensions);

const failed = results.filter(([, v]) => v !== "ok");
console.log(`[${CLIENT}] ${results.length - failed.length} of ${results.length} checks passed`);
if (failed.length) {
  console.error(`[${CLIENT}] failed: ${failed.map(([n]) => n).join(", ")}`);
  process.exit(1);
}
