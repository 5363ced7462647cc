#!/usr/bin/env python3
"""Veza's /rest/ API as py-sonic (PyPI `py-sonic`, module `libsonic`) drives it: salt+token
auth, form POSTs, f=json. Browses, searches, plays (following the 302 to the signed URL), edits
playlists and stars, scrobbles, and tries wrong credentials. Inputs: the scene file named by
VEZA_SUBSONIC_SCENE. Every JSON answer is recorded for validate.py."""

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import libsonic
from libsonic import errors

from common import Checks, CheckFailed, expect, expect_eq, image_kind, load_scene, record, sha256

SCENE = load_scene()
CLIENT = "py-sonic"
ALBUM_LIST_TYPES = [
    "random",
    "newest",
    "highest",
    "frequent",
    "recent",
    "alphabeticalByName",
    "alphabeticalByArtist",
    "starred",
]


class Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, remembering each (status, Location)."""

    def __init__(self):
        self.seen = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.seen.append((code, newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Recording(libsonic.Connection):
    """A libsonic Connection that records every JSON answer and every redirect it follows."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.redirects = Redirects()
        self._opener = urllib.request.build_opener(self.redirects)

    def _doInfoReq(self, req):
        res = self._opener.open(req)
        answer = json.loads(res.read().decode("utf-8"))
        record(SCENE, CLIENT, req.full_url, req.data, res.status, answer)
        return answer["subsonic-response"]

    def _doBinReq(self, req):
        self.redirects.seen.clear()
        res = super()._doBinReq(req)
        if isinstance(res, dict):
            record(SCENE, CLIENT, req.full_url, req.data, 200, {"subsonic-response": res})
        return res


def connect(password=None, app_name="py-sonic", legacy=False, username=None):
    """A Connection to the scene's server as its user (or `username`)."""
    u = urllib.parse.urlsplit(SCENE["url"])
    return Recording(
        f"{u.scheme}://{u.hostname}",
        username or SCENE["username"],
        password if password is not None else SCENE["app_password"],
        port=u.port,
        appName=app_name,
        legacyAuth=legacy,
    )


TRACKS = SCENE["tracks"]
BY_ID = {t["id"]: t for t in TRACKS}
ALBUMS = sorted({t["album"] for t in TRACKS})
conn = connect()
checks = Checks(CLIENT, SCENE.get("only"))
found = {}  # what browsing discovered: album/artist ids by name, cover art ids by song id


def as_list(v):
    """Subsonic JSON lists may be absent when empty."""
    return v if isinstance(v, list) else ([] if v is None else [v])


def check_song(song, t, where):
    """A song entry carries the track's tags."""
    expect_eq(song["id"], t["id"], f"{where}: id")
    for key, want in [
        ("title", t["title"]),
        ("artist", t["artist"]),
        ("album", t["album"]),
        ("genre", t["genre"]),
        ("year", t["year"]),
        ("track", t["track"]),
    ]:
        expect_eq(song.get(key), want, f"{where}: {key} of {t['title']!r}")
    expect(song.get("duration", 0) > 0, f"{where}: duration of {t['title']!r} is {song.get('duration')}")
    expect(song.get("isDir") is False, f"{where}: isDir should be false: {song}")


# --- system -----------------------------------------------------------------------------------
def ping():
    expect(conn.ping(), "ping answered not ok")


def music_folders():
    folders = as_list(conn.getMusicFolders()["musicFolders"].get("musicFolder"))
    expect(len(folders) >= 1, f"no music folder: {folders}")
    found["folder"] = folders[0]["id"]


def indexes():
    ix = conn.getIndexes()["indexes"]
    names = {a["name"] for i in as_list(ix.get("index")) for a in as_list(i.get("artist"))}
    want = {t["album_artist"] for t in TRACKS}
    expect(want <= names, f"getIndexes lists {sorted(names)}, missing {sorted(want - names)}")


# --- browsing by tags ---------------------------------------------------------------------------
def artists():
    idx = as_list(conn.getArtists()["artists"].get("index"))
    arts = {a["name"]: a for i in idx for a in as_list(i.get("artist"))}
    want = {t["album_artist"] for t in TRACKS}
    expect(want <= set(arts), f"getArtists lists {sorted(arts)}, missing {sorted(want - set(arts))}")
    for name in want:
        a = arts[name]
        expect(str(a["id"]).startswith("ar-"), f"artist id {a['id']!r} does not start with ar-")
        n = len({t["album"] for t in TRACKS if t["album_artist"] == name})
        expect_eq(a.get("albumCount"), n, f"albumCount of {name!r}")
        found.setdefault("artist", {})[name] = a["id"]


def artist_albums():
    for name, aid in found["artist"].items():
        art = conn.getArtist(aid)["artist"]
        expect_eq(art["name"], name, "getArtist name")
        albums = {al["name"]: al for al in as_list(art.get("album"))}
        want = {t["album"] for t in TRACKS if t["album_artist"] == name}
        expect_eq(set(albums), want, f"albums of {name!r}")
        for al in albums.values():
            expect(str(al["id"]).startswith("al-"), f"album id {al['id']!r} does not start with al-")
            found.setdefault("album", {})[al["name"]] = al["id"]


def album_songs():
    for name, alid in found["album"].items():
        al = conn.getAlbum(alid)["album"]
        want = sorted((t for t in TRACKS if t["album"] == name), key=lambda t: t["track"])
        songs = as_list(al.get("song"))
        expect_eq([s["title"] for s in songs], [t["title"] for t in want], f"songs of {name!r}")
        expect_eq(al.get("songCount"), len(want), f"songCount of {name!r}")
        expect_eq(al.get("year"), want[0]["year"], f"year of {name!r}")
        expect_eq(al.get("genre"), want[0]["genre"], f"genre of {name!r}")
        expect(al.get("duration", 0) > 0, f"album duration {al.get('duration')}")
        for s, t in zip(songs, want):
            check_song(s, t, "getAlbum")
            expect_eq(s.get("albumId"), alid, "song albumId")
            if s.get("coverArt"):
                found.setdefault("cover", {})[s["id"]] = s["coverArt"]
        if al.get("coverArt"):
            found.setdefault("album_cover", {})[name] = al["coverArt"]


def songs():
    for t in TRACKS:
        s = conn.getSong(t["id"])["song"]
        check_song(s, t, "getSong")
        expect_eq(s.get("albumId"), found["album"][t["album"]], "getSong albumId")
        expect(s.get("size", 0) > 0, f"size {s.get('size')}")
        expect(s.get("suffix"), f"no suffix: {s}")
        expect(str(s.get("contentType", "")).startswith("audio/"), f"contentType {s.get('contentType')}")


def music_directory():
    # The folder view: an artist's directory lists albums; an album's lists songs.
    for name, alid in found["album"].items():
        d = conn.getMusicDirectory(alid)["directory"]
        titles = sorted(c["title"] for c in as_list(d.get("child")))
        expect_eq(titles, sorted(t["title"] for t in TRACKS if t["album"] == name), "directory children")


def album_list(ltype, **kw):
    return as_list(conn.getAlbumList2(ltype, size=50, **kw)["albumList2"].get("album"))


def album_lists():
    for ltype in ALBUM_LIST_TYPES:
        got = album_list(ltype)
        names = [a["name"] for a in got]
        if ltype in ("random", "newest", "alphabeticalByName", "alphabeticalByArtist"):
            expect_eq(sorted(names), ALBUMS, f"getAlbumList2 type={ltype}")
        if ltype == "alphabeticalByName":
            expect_eq(names, sorted(names, key=str.lower), "alphabeticalByName order")
        if ltype == "alphabeticalByArtist":
            arts = [a.get("artist", "").lower() for a in got]
            expect_eq(arts, sorted(arts), "alphabeticalByArtist order")
        if ltype == "starred":
            expect_eq(names, [], "starred albums before starring")
    years = sorted({t["year"] for t in TRACKS})
    lo = years[-1]
    got = album_list("byYear", fromYear=lo, toYear=lo + 1)
    want = sorted({t["album"] for t in TRACKS if t["year"] >= lo})
    expect_eq(sorted(a["name"] for a in got), want, f"byYear {lo}..{lo + 1}")
    # Reversed range: newest first (the spec's rule), same set.
    got = album_list("byYear", fromYear=lo + 1, toYear=years[0])
    expect_eq(sorted(a["name"] for a in got), ALBUMS, f"byYear {lo + 1}..{years[0]}")
    genre = TRACKS[0]["genre"]
    got = album_list("byGenre", genre=genre)
    want = sorted({t["album"] for t in TRACKS if t["genre"] == genre})
    expect_eq(sorted(a["name"] for a in got), want, f"byGenre {genre}")
    # fromYear/toYear are "Required if type=='byYear'", genre if byGenre: error 10 without.
    lax = []
    for ltype in ("byYear", "byGenre"):
        try:
            lax.append(f"{ltype} without its parameters answered ok ({len(album_list(ltype))} albums)")
        except errors.ParameterError:
            pass
    expect(not lax, f"{'; '.join(lax)}: want error 10")


def random_songs():
    got = as_list(conn.getRandomSongs(size=50)["randomSongs"].get("song"))
    expect_eq(sorted(s["id"] for s in got), sorted(BY_ID), "getRandomSongs ids")
    genre = TRACKS[-1]["genre"]
    got = as_list(conn.getRandomSongs(size=50, genre=genre)["randomSongs"].get("song"))
    want = sorted(t["id"] for t in TRACKS if t["genre"] == genre)
    expect_eq(sorted(s["id"] for s in got), want, f"getRandomSongs genre={genre}")
    got = as_list(conn.getRandomSongs(size=1)["randomSongs"].get("song"))
    expect_eq(len(got), 1, "getRandomSongs size=1")


def genres():
    gs = {g["value"]: g for g in as_list(conn.getGenres()["genres"].get("genre"))}
    for name in {t["genre"] for t in TRACKS}:
        expect(name in gs, f"genre {name!r} missing from {sorted(gs)}")
        expect_eq(gs[name]["songCount"], sum(t["genre"] == name for t in TRACKS), f"songCount of {name}")
        expect_eq(
            gs[name]["albumCount"], len({t["album"] for t in TRACKS if t["genre"] == name}), f"albumCount of {name}"
        )


def search(which):
    fn = conn.search3 if which == 3 else conn.search2
    key = f"searchResult{which}"
    t = TRACKS[0]
    word = t["title"].split()[-1]
    r = fn(word)[key]
    expect(t["id"] in [s["id"] for s in as_list(r.get("song"))], f"search{which} {word!r}: {r}")
    r = fn(t["album"])[key]
    # search3 lists AlbumID3 (`name`); search2 lists albums as directory Children (`title`).
    name = "name" if which == 3 else "title"
    expect(t["album"] in [a.get(name) for a in as_list(r.get("album"))], f"search{which} album: {r}")
    r = fn(t["album_artist"])[key]
    expect(t["album_artist"] in [a["name"] for a in as_list(r.get("artist"))], f"search{which} artist: {r}")
    r = fn("zzz-no-such-thing")[key]
    expect(not as_list(r.get("song")), f"search{which} nonsense found songs: {r}")
    if which == 3:
        # OpenSubsonic: an empty query returns everything (clients sync this way).
        r = fn("", songCount=500, albumCount=500, artistCount=500)[key]
        expect_eq(sorted(s["id"] for s in as_list(r.get("song"))), sorted(BY_ID), 'search3 "" songs')


# --- media ----------------------------------------------------------------------------------------
def followed_redirect(c, what):
    """The request was answered 302 to a signed URL under the scene's redirect prefix."""
    expect(c.redirects.seen, f"{what}: answered without a redirect (bytes from /rest/ itself)")
    code, loc = c.redirects.seen[0]
    expect_eq(code, 302, f"{what}: redirect status")
    expect(loc.startswith(SCENE["redirect_prefix"]), f"{what}: Location {loc} is not under {SCENE['redirect_prefix']}")
    expect("/rest/" not in loc, f"{what}: Location {loc} points back at /rest/")
    return loc


def read_binary(res, what):
    expect(not isinstance(res, dict), f"{what}: JSON answer {res}")
    expect_eq(res.status, 200, f"{what}: final status")
    return res.read()


def cover_art():
    covered = [t for t in TRACKS if t["cover"]]
    expect(covered, "the scene has no track with a cover")
    for t in covered:
        cid = found.get("cover", {}).get(t["id"])
        expect(cid, f"getAlbum gave {t['title']!r} no coverArt")
        data = read_binary(conn.getCoverArt(cid), "getCoverArt")
        followed_redirect(conn, "getCoverArt")
        expect(image_kind(data), f"getCoverArt bytes are not PNG/JPEG: {data[:8]!r}")
        sized = read_binary(conn.getCoverArt(cid, size=64), "getCoverArt size=64")
        expect(image_kind(sized), f"getCoverArt size=64 bytes are not PNG/JPEG: {sized[:8]!r}")
    alcid = found.get("album_cover", {}).get(covered[0]["album"])
    expect(alcid, f"album {covered[0]['album']!r} has no coverArt")
    expect(image_kind(read_binary(conn.getCoverArt(alcid), "album getCoverArt")), "album cover bytes")


def stream_originals():
    for t in TRACKS:
        data = read_binary(conn.stream(t["id"]), "stream")
        followed_redirect(conn, f"stream {t['title']!r}")
        expect_eq(sha256(data), t["sha256"], f"stream {t['title']!r} sha256")
    t = TRACKS[0]
    data = read_binary(conn.stream(t["id"], tformat="raw"), "stream format=raw")
    expect_eq(sha256(data), t["sha256"], "stream format=raw sha256")


def stream_transcoded():
    t = TRACKS[0]
    kbps = SCENE["transcode_kbps"]
    data = read_binary(conn.stream(t["id"], maxBitRate=kbps), f"stream maxBitRate={kbps}")
    loc = followed_redirect(conn, f"stream maxBitRate={kbps}")
    expect(sha256(data) != t["sha256"], f"maxBitRate={kbps} gave the original's bytes ({loc})")
    path = os.path.join(SCENE["workdir"], f"py-{kbps}.m4a")
    with open(path, "wb") as f:
        f.write(data)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path],
        capture_output=True,
        text=True,
    )
    expect(probe.returncode == 0, f"ffprobe refused the maxBitRate={kbps} file: {probe.stderr.strip()}")
    info = json.loads(probe.stdout)
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    expect(len(audio) == 1, f"streams: {info['streams']}")
    expect_eq(audio[0]["codec_name"], "aac", "codec")
    expect("mp4" in info["format"]["format_name"], f"container {info['format']['format_name']}")
    rate = int(audio[0].get("bit_rate") or info["format"]["bit_rate"])
    expect(abs(rate - kbps * 1000) <= kbps * 250, f"bit rate {rate} is not within 25% of {kbps} kbps")
    return rate


def proxied_stream():
    # A client named in subsonic.proxy_clients (DSub by default) gets the bytes, not a 302.
    dsub = connect(app_name="DSub")
    t = TRACKS[1]
    data = read_binary(dsub.stream(t["id"]), "DSub stream")
    expect(not dsub.redirects.seen, f"DSub stream was redirected: {dsub.redirects.seen}")
    expect_eq(sha256(data), t["sha256"], "DSub stream sha256")


def download():
    t = TRACKS[-1]
    data = read_binary(conn.download(t["id"]), "download")
    followed_redirect(conn, "download")
    expect_eq(sha256(data), t["sha256"], "download sha256")


# --- playlists, stars, plays ---------------------------------------------------------------------
def entries(pl):
    return [e["id"] for e in as_list(pl.get("entry"))]


def playlists():
    a, b, c = (t["id"] for t in TRACKS[:3])
    made = conn.createPlaylist(name="Road trip", songIds=[a, b])["playlist"]
    pid = made["id"]
    expect_eq(entries(made), [a, b], "createPlaylist entries")
    mine = {p["id"]: p for p in as_list(conn.getPlaylists()["playlists"].get("playlist"))}
    expect(pid in mine, f"getPlaylists lacks {pid}: {sorted(mine)}")
    expect_eq(mine[pid]["songCount"], 2, "songCount")
    expect_eq(mine[pid]["name"], "Road trip", "name")
    expect_eq(mine[pid].get("owner"), SCENE["username"], "owner")
    conn.updatePlaylist(pid, name="Road trip 2", songIdsToAdd=[c], songIndexesToRemove=[0])
    pl = conn.getPlaylist(pid)["playlist"]
    expect_eq(pl["name"], "Road trip 2", "renamed")
    expect_eq(entries(pl), [b, c], "entries after add c, remove index 0")
    expect_eq(pl["songCount"], 2, "songCount after update")
    # createPlaylist with playlistId replaces the songs (the spec's update form).
    pl = conn.createPlaylist(playlistId=pid, songIds=[c, a, c])["playlist"]
    expect_eq(entries(pl), [c, a, c], "createPlaylist(playlistId) replaces the entries")
    conn.deletePlaylist(pid)
    mine = [p["id"] for p in as_list(conn.getPlaylists()["playlists"].get("playlist"))]
    expect(pid not in mine, "deleted playlist still listed")
    try:
        conn.getPlaylist(pid)
        raise CheckFailed("getPlaylist of a deleted playlist should be error 70")
    except errors.DataNotFoundError:
        pass


def stars():
    t = TRACKS[0]
    alid = found["album"][t["album"]]
    arid = found["artist"][t["album_artist"]]
    conn.star(sids=[t["id"]], albumIds=[alid], artistIds=[arid])
    s2 = conn.getStarred2()["starred2"]
    expect_eq([s["id"] for s in as_list(s2.get("song"))], [t["id"]], "starred songs")
    expect_eq([a["id"] for a in as_list(s2.get("album"))], [alid], "starred albums")
    expect_eq([a["id"] for a in as_list(s2.get("artist"))], [arid], "starred artists")
    for kind in ("song", "album", "artist"):
        expect(as_list(s2[kind])[0].get("starred"), f"starred {kind} has no starred date")
    expect(conn.getSong(t["id"])["song"].get("starred"), "getSong lacks starred after star")
    expect_eq([a["id"] for a in album_list("starred")], [alid], "getAlbumList2 starred")
    conn.unstar(sids=[t["id"]], albumIds=[alid], artistIds=[arid])
    s2 = conn.getStarred2()["starred2"]
    for kind in ("song", "album", "artist"):
        expect_eq(as_list(s2.get(kind)), [], f"starred {kind}s after unstar")


def scrobbles():
    t = TRACKS[1]
    before = conn.getSong(t["id"])["song"].get("playCount", 0)
    conn.scrobble(t["id"])
    after = conn.getSong(t["id"])["song"]
    expect_eq(after.get("playCount"), before + 1, "playCount after scrobble")
    expect(after.get("played"), f"no played date after scrobble: {after}")
    # submission=false is a "now playing" notice: no count.
    conn.scrobble(t["id"], submission=False)
    expect_eq(conn.getSong(t["id"])["song"].get("playCount"), before + 1, "playCount after submission=false")
    for ltype in ("recent", "frequent"):
        names = [a["name"] for a in album_list(ltype)]
        expect(names and names[0] == t["album"], f"getAlbumList2 {ltype} after a scrobble: {names}")


def user():
    u = conn.getUser(SCENE["username"])["user"]
    expect_eq(u["username"], SCENE["username"], "username")
    expect_eq(u.get("streamRole"), True, "streamRole")
    expect_eq(u.get("scrobblingEnabled"), True, "scrobblingEnabled")


# --- credentials and errors ------------------------------------------------------------------------
def expect_error(fn, exc, code_name):
    try:
        fn()
    except exc:
        return
    raise CheckFailed(f"expected Subsonic error {code_name}")


def credentials():
    expect(connect(legacy=True).ping(), "p=enc:hex with the app password was refused")
    expect_error(lambda: connect(password="not-the-password").ping(), errors.CredentialError, "40 (wrong password)")
    expect_error(
        lambda: connect(password=SCENE["login_password"]).ping(), errors.CredentialError, "40 (login password, t+s)"
    )
    expect_error(
        lambda: connect(password=SCENE["login_password"], legacy=True).ping(),
        errors.CredentialError,
        "40 (login password, p=enc:)",
    )
    expect_error(lambda: connect(username="nobody-here").ping(), errors.CredentialError, "40 (unknown user)")
    # p= in plain text (what legacyAuth clients without enc: send): the app password only.
    for password, want in [(SCENE["app_password"], None), (SCENE["login_password"], 40)]:
        q = urllib.parse.urlencode({"u": SCENE["username"], "p": password, "v": "1.16.1", "c": "py", "f": "json"})
        url = f"{SCENE['url'].rstrip('/')}/rest/ping.view"
        ans = conn._doInfoReq(urllib.request.Request(url, q.encode()))
        expect_eq(ans.get("error", {}).get("code"), want, f"plain p= ({'login' if want else 'app'} password): {ans}")


def not_found_and_missing():
    expect_error(lambda: conn.getSong("00000000-0000-0000-0000-000000000000"), errors.DataNotFoundError, "70")
    expect_error(lambda: conn.getAlbum("al-nope"), errors.DataNotFoundError, "70")
    ans = conn._doInfoReq(conn._getRequest("getSong.view", {}))
    expect_eq(ans.get("error", {}).get("code"), 10, f"getSong without id: {ans}")
    res = conn._doBinReq(conn._getRequest("stream.view", {"id": "00000000-0000-0000-0000-000000000000"}))
    expect(isinstance(res, dict), "stream of an unknown id answered bytes")
    expect_eq(res.get("error", {}).get("code"), 70, f"stream of an unknown id: {res}")


checks.run("browse", "ping", ping)
checks.run("browse", "getMusicFolders", music_folders)
checks.run("browse", "getIndexes", indexes)
checks.run("browse", "getArtists", artists)
checks.run("browse", "getArtist", artist_albums)
checks.run("browse", "getAlbum → songs", album_songs)
checks.run("browse", "getSong", songs)
checks.run("browse", "getMusicDirectory", music_directory)
checks.run("browse", "getAlbumList2 (every type)", album_lists)
checks.run("browse", "getRandomSongs", random_songs)
checks.run("browse", "getGenres", genres)
checks.run("browse", "search3", lambda: search(3))
checks.run("browse", "search2", lambda: search(2))
checks.run("browse", "getCoverArt (302, image bytes)", cover_art)
checks.run("stream", "stream (302, original sha256)", stream_originals)
checks.run("stream", "stream maxBitRate (AAC, ffprobe)", stream_transcoded)
checks.run("browse", "stream as DSub (proxied bytes)", proxied_stream)
checks.run("stream", "download (302, original sha256)", download)
checks.run("browse", "playlists (create/get/update/delete)", playlists)
checks.run("browse", "star/unstar/getStarred2", stars)
checks.run("browse", "scrobble → playCount", scrobbles)
checks.run("browse", "getUser", user)
checks.run("auth", "credentials (app password only; 40)", credentials)
checks.run("browse", "errors 70 and 10", not_found_and_missing)
checks.finish()
