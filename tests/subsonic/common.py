"""Shared by the Python client scripts: the scene the Rust test wrote, a recorder of every JSON
answer (validate.py checks them against the OpenSubsonic description), and a check runner that
keeps going after a failure so one run names every broken endpoint."""

import hashlib
import json
import os
import sys
import traceback
import urllib.parse

# Query/form keys that carry credentials or client identity, never content.
AUTH_KEYS = {"u", "t", "s", "p", "apiKey", "c", "v", "f"}


def load_scene():
    """The JSON file named by VEZA_SUBSONIC_SCENE (server URL, credentials, expected tracks)."""
    path = os.environ.get("VEZA_SUBSONIC_SCENE")
    if not path:
        sys.exit("VEZA_SUBSONIC_SCENE is not set: run this through tests/it/subsonic_clients.rs")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def method_of(url):
    """`getAlbum` from `http://host/rest/getAlbum.view?…`."""
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return name[: -len(".view")] if name.endswith(".view") else name


def params_of(url, body=None):
    """The request's non-auth parameters (query and form body), as name → list of values."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    if body:
        text = body.decode() if isinstance(body, bytes) else body
        for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items():
            q.setdefault(k, []).extend(v)
    return {k: v for k, v in q.items() if k not in AUTH_KEYS}


def record(scene, client, url, body, http_status, answer):
    """Appends one JSON answer to the scene's record file (JSON lines)."""
    entry = {
        "client": client,
        "method": method_of(url),
        "params": params_of(url, body),
        "http_status": http_status,
        "body": answer,
    }
    with open(scene["record"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def image_kind(data):
    """`png`, `jpeg` or None, from the magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


class CheckFailed(Exception):
    """A check's expectation did not hold."""


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


class Checks:
    """Runs named checks, prints `name → ok` or `name → FAILED: why`, exits 1 if any failed."""

    def __init__(self, client, only=None):
        self.client = client
        self.only = set(only) if only else None
        self.results = []

    def run(self, group, name, fn):
        """Runs `fn()` unless the scene limits the run to other groups; returns its value."""
        if self.only is not None and group not in self.only:
            return None
        try:
            value = fn()
        except CheckFailed as e:
            self._note(name, f"FAILED: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - any client error is a failed check, with its words
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            self._note(name, f"FAILED: {tb}")
            return None
        self._note(name, "ok")
        return value

    def _note(self, name, verdict):
        self.results.append((name, verdict))
        print(f"[{self.client}] {name} → {verdict}", flush=True)

    def finish(self):
        failed = [n for n, v in self.results if v != "ok"]
        print(
            f"[{self.client}] {len(self.results) - len(failed)} of {len(self.results)} checks passed",
            flush=True,
        )
        if not self.results:
            print(f"[{self.client}] no check ran", file=sys.stderr)
            sys.exit(1)
        if failed:
            print(f"[{self.client}] failed: {', '.join(failed)}", file=sys.stderr)
            sys.exit(1)
