#!/usr/bin/env python3
"""Checks what the client scripts saw against the OpenSubsonic description.

1. Every JSON answer recorded by pysonic_client.py and node_client.mjs is validated against the
   response schema of its endpoint in the OpenSubsonic OpenAPI description (multi-file, relative
   $refs, read from OPENSUBSONIC_SPEC or the scene's `spec`; never copied into the project).
2. For each endpoint seen, the same call is made again as JSON (f=json) and as XML (no f: XML is
   the default), and the XML (namespace http://subsonic.org/restapi, root subsonic-response) must
   carry the same content: attributes ↔ scalar fields, child elements ↔ objects and array items,
   element text ↔ a field named `value`.
Exits 1 naming every failure; 2 when the description is missing."""

import datetime
import hashlib
import json
import os
import secrets
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from common import load_scene

NS = "http://subsonic.org/restapi"
# Answers that do not change what they read, so JSON and XML can be fetched one after the other.
READ_ONLY = {
    "ping", "getLicense", "getOpenSubsonicExtensions", "getMusicFolders", "getIndexes",
    "getArtists", "getArtist", "getAlbum", "getAlbumList2", "getMusicDirectory", "getSong",
    "getRandomSongs", "getGenres", "search3", "search2", "getUser", "getPlaylists",
    "getPlaylist", "getStarred2",
}  # fmt: skip
# Binary endpoints: their JSON answers are errors, described by the common wrapper.
BINARY = {"stream", "download", "getCoverArt", "hls.m3u8"}

SCENE = load_scene()
failures = []


def fail(msg):
    failures.append(msg)
    print(f"[validate] FAILED: {msg}", flush=True)


# --- the description --------------------------------------------------------------------------
def spec_dir():
    d = Path(os.environ.get("OPENSUBSONIC_SPEC") or SCENE.get("spec") or "")
    if not (d / "openapi" / "openapi.json").is_file():
        print(
            f"[validate] the OpenSubsonic description is not at {d}/openapi/openapi.json "
            "(set OPENSUBSONIC_SPEC to the folder holding openapi/)",
            file=sys.stderr,
        )
        sys.exit(2)
    return d / "openapi"


def translate(node):
    """OpenAPI 3.0 schema → JSON Schema draft 4: `nullable: true` adds "null" to the type."""
    if isinstance(node, dict):
        out = {k: translate(v) for k, v in node.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [translate(v) for v in node]
    return node


def retrieve(uri):
    path = urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    return Resource.from_contents(translate(json.loads(Path(path).read_text())), default_specification=DRAFT4)


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def is_datetime(value):
    if not isinstance(value, str):
        return True
    if "T" not in value:
        raise ValueError("no T between date and time")
    if datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None:
        raise ValueError("no time zone")
    return True


class Spec:
    """Response schemas by endpoint name, resolved through the description's relative $refs."""

    def __init__(self, root):
        self.root = root
        self.registry = Registry(retrieve=retrieve)
        self.cache = {}

    def _ref(self, base, ref):
        return (base.parent / ref).resolve()

    def schema_uri(self, method):
        """The file URI of the 200 answer's JSON schema for `method` (errors only, for binaries)."""
        if method in BINARY:
            return (self.root / "schemas" / "SubsonicResponse.json").resolve().as_uri()
        ep = self.root / "endpoints" / f"{method}.json"
        if not ep.is_file():
            raise KeyError(f"the description has no endpoint {method}")
        op = json.loads(ep.read_text())
        op = op.get("get") or op.get("post")
        resp, base = op["responses"]["200"], ep
        if "$ref" in resp:
            base = self._ref(base, resp["$ref"])
            resp = json.loads(base.read_text())
        schema = resp["content"]["application/json"]["schema"]
        return self._ref(base, schema["$ref"]).as_uri()

    def validator(self, method):
        if method not in self.cache:
            uri = self.schema_uri(method)
            self.cache[method] = Draft4Validator({"$ref": uri}, registry=self.registry, format_checker=FORMATS)
        return self.cache[method]


def leaves(err):
    """The errors that say why: inside oneOf (success | failure), those of the branch that
    matches the answer's status."""
    if not err.context:
        return [err]
    branches = {}
    for sub in err.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    # The other branch fails on `status` (or on `error` being required); skip it.
    for subs in branches.values():
        if not any(
            list(s.absolute_path)[-1:] == ["status"] or "'error' is a required" in s.message for s in subs
        ):
            return [d for s in subs for d in leaves(s)]
    return [d for s in err.context for d in leaves(s)]


def validate_records(spec):
    path = Path(SCENE["record"])
    if not path.is_file():
        fail(f"no answers were recorded at {path}")
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kinds = {}
    for r in records:
        method, body = r["method"], r["body"]
        status = body.get("subsonic-response", {}).get("status")
        kind = f"{method} ({status})"
        kinds.setdefault(kind, 0)
        if r["http_status"] != 200:
            fail(f"{kind}: HTTP {r['http_status']} (Subsonic answers 200, errors included)")
        if "subsonic-response" not in body:
            fail(f"{kind}: no subsonic-response: {str(body)[:300]}")
            continue
        sr = body["subsonic-response"]
        for key, want in [("version", "1.16.1"), ("type", "veza"), ("openSubsonic", True)]:
            if sr.get(key) != want:
                fail(f"{kind}: {key} is {sr.get(key)!r}, want {want!r}")
        try:
            v = spec.validator(method)
        except KeyError as e:
            fail(f"{kind}: {e}")
            continue
        errs = {(tuple(d.absolute_path), d.message): d for e in v.iter_errors(body) for d in leaves(e)}
        errs = list(errs.values())
        if errs:
            detail = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message[:300]}" for e in errs[:5])
            fail(f"{kind} from {r['client']} {r['params']}: {detail}")
        else:
            kinds[kind] += 1
    for kind, n in sorted(kinds.items()):
        if n:
            print(f"[validate] schema {kind} → ok ({n} answers)", flush=True)
    return records


# --- JSON ↔ XML ------------------------------------------------------------------------------
def call(method, params, fmt):
    """GET /rest/{method} with salt+token auth; (content type, body bytes)."""
    salt = secrets.token_hex(6)
    token = hashlib.md5((SCENE["app_password"] + salt).encode()).hexdigest()
    q = [(k, v) for k, vs in params.items() for v in vs]
    q += [("u", SCENE["username"]), ("t", token), ("s", salt), ("v", "1.16.1"), ("c", "veza-validate")]
    if fmt == "json":
        q.append(("f", "json"))
    url = f"{SCENE['url'].rstrip('/')}/rest/{method}?{urllib.parse.urlencode(q)}"
    with urllib.request.urlopen(url) as res:
        return res.headers.get("content-type", ""), res.read()


def leaf(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def from_json(obj):
    """A JSON object as a tree: scalars → strings, objects and arrays → lists of trees."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out[k] = [from_json(v)]
        elif isinstance(v, list):
            if v:
                out[k] = [from_json(x) if isinstance(x, dict) else {"value": leaf(x)} for x in v]
        else:
            out[k] = leaf(v)
    return out


def from_xml(el, path):
    """An XML element as the same tree; every element must be in the Subsonic namespace."""
    out = dict(el.attrib)
    for child in el:
        ns, _, tag = child.tag[1:].partition("}")
        if ns != NS:
            fail(f"{path}: element {child.tag} is not in {NS}")
        out.setdefault(tag, []).append(from_xml(child, f"{path}/{tag}"))
    text = (el.text or "").strip()
    if text:
        out["value"] = text
    return out


def same_leaf(a, b):
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def diff(j, x, path, out, unordered):
    if isinstance(j, str) or isinstance(x, str):
        if not (isinstance(j, str) and isinstance(x, str) and same_leaf(j, x)):
            out.append(f"{path}: JSON {str(j)[:80]!r} ≠ XML {str(x)[:80]!r}")
        return
    if isinstance(j, list):
        if len(j) != len(x):
            out.append(f"{path}: JSON has {len(j)} items, XML {len(x)}")
            return
        if unordered:
            j = sorted(j, key=lambda t: json.dumps(t, sort_keys=True))
            x = sorted(x, key=lambda t: json.dumps(t, sort_keys=True))
        for i, (a, b) in enumerate(zip(j, x)):
            diff(a, b, f"{path}[{i}]", out, unordered)
        return
    for k in sorted(set(j) | set(x)):
        if k not in x:
            out.append(f"{path}: {k} in JSON only ({str(j[k])[:80]})")
        elif k not in j:
            out.append(f"{path}: {k} in XML only ({str(x[k])[:80]})")
        else:
            diff(j[k], x[k], f"{path}/{k}", out, unordered)


def parity(method, params, unordered=False, label=None):
    label = label or f"{method} {params}"
    jt, jb = call(method, params, "json")
    xt, xb = call(method, params, "xml")
    if not jt.startswith("application/json"):
        fail(f"{label}: f=json answered {jt}")
        return
    if not (xt.startswith("text/xml") or xt.startswith("application/xml")):
        fail(f"{label}: the default (XML) answered {xt}")
        return
    root = ET.fromstring(xb)
    if root.tag != f"{{{NS}}}subsonic-response":
        fail(f"{label}: XML root is {root.tag}, want {{{NS}}}subsonic-response")
        return
    j = from_json(json.loads(jb)["subsonic-response"])
    x = from_xml(root, "subsonic-response")
    out = []
    diff(j, x, "subsonic-response", out, unordered)
    if out:
        fail(f"{label}: XML differs from JSON: " + "; ".join(out[:6]))
    else:
        print(f"[validate] xml = json: {label} → ok", flush=True)


def xml_status(method, params):
    """An XML call's root element (after checking it is a subsonic-response)."""
    _, body = call(method, params, "xml")
    root = ET.fromstring(body)
    if root.tag != f"{{{NS}}}subsonic-response":
        fail(f"{method}: XML root is {root.tag}")
    return root


def mutations():
    """createPlaylist, star/unstar and deletePlaylist as XML against their JSON reading."""
    ids = [t["id"] for t in SCENE["tracks"][:2]]
    made = xml_status("createPlaylist", {"name": ["xml parity"], "songId": ids})
    pl = made.find(f"{{{NS}}}playlist")
    if made.get("status") != "ok" or pl is None:
        fail(f"createPlaylist as XML: {ET.tostring(made)[:300]!r}")
        return
    pid = pl.get("id")
    _, jb = call("getPlaylist", {"id": [pid]}, "json")
    want = from_json(json.loads(jb)["subsonic-response"]["playlist"])
    got = from_xml(pl, "playlist")
    out = []
    # The answer to createPlaylist is the playlist as getPlaylist shows it.
    diff(want, got, "playlist", out, False)
    if out:
        fail("createPlaylist (XML) ≠ getPlaylist (JSON): " + "; ".join(out[:6]))
    else:
        print("[validate] xml = json: createPlaylist → ok", flush=True)
    for method, params in [("star", {"id": ids[:1]}), ("unstar", {"id": ids[:1]}), ("deletePlaylist", {"id": [pid]})]:
        root = xml_status(method, params)
        if root.get("status") != "ok" or len(root):
            fail(f"{method} as XML: {ET.tostring(root)[:300]!r}")
        else:
            print(f"[validate] xml: {method} → ok", flush=True)


def xml_parity(records):
    seen = set()
    for r in records:
        method = r["method"]
        if method not in READ_ONLY:
            continue
        key = (method, json.dumps(r["params"], sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        random = method == "getRandomSongs" or r["params"].get("type") == ["random"]
        size = int(r["params"].get("size", ["10"])[0])
        if random and size < len(SCENE["tracks"]):
            # Two random draws of a subset differ; only a draw of everything can be compared.
            print(f"[validate] xml = json: {method} {r['params']} → not comparable (random subset)")
            continue
        parity(method, r["params"], unordered=random)
    # Errors, as XML too.
    parity("getSong", {"id": ["00000000-0000-0000-0000-000000000000"]}, label="getSong error 70")
    parity("getSong", {}, label="getSong error 10")
    mutations()


spec = spec_dir()
records = validate_records(Spec(spec))
methods = sorted({r["method"] for r in records})
print(f"[validate] {len(records)} JSON answers from {len(methods)} endpoints: {', '.join(methods)}", flush=True)
try:
    xml_parity(records)
except Exception as e:  # noqa: BLE001 - an unreadable answer is a failure with its words
    fail(f"XML comparison stopped: {type(e).__name__}: {e}")
if failures:
    print(f"[validate] {len(failures)} failures", file=sys.stderr)
    sys.exit(1)
print("[validate] all answers match the description, and XML matches JSON", flush=True)
