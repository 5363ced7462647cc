// Library: drag-and-drop upload of several files with progress, search, sort, paging, inline
// edit, bulk select; hide, take down and delete.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, bytes, clock, uploadFile } from "../lib/api.js";

const STATUS = { processing: "Processing", ready: "Ready", failed: "Failed", taken_down: "Taken down" };

export function Badge({ status }) {
  return <span class={`badge ${status}`}>{STATUS[status] || status}</span>;
}

function Uploads({ onDone }) {
  const [items, setItems] = useState([]);
  const [over, setOver] = useState(false);
  const input = useRef(null);
  const update = (i, patch) => setItems((all) => all.map((x, j) => (j === i ? { ...x, ...patch } : x)));
  const start = (files) => {
    const base = items.length;
    const list = [...files].map((f) => ({ name: f.name, size: f.size, sent: 0, state: "uploading" }));
    setItems((all) => [...all, ...list]);
    // Two or three at once: enough to fill the pipe without starving the server.
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const k = next++;
        const f = files[k];
        const t0 = performance.now();
        try {
          const r = await uploadFile(f, (sent) => update(base + k, { sent, speed: sent / ((performance.now() - t0) / 1000) }));
          if (r.status === 201) update(base + k, { state: "done", sent: f.size, track: r.body });
          else if (r.status === 200) update(base + k, { state: "duplicate", sent: f.size, track: r.body });
          else update(base + k, { state: "error", error: (r.body && r.body.error && r.body.error.message) || `HTTP ${r.status}` });
        } catch (e) {
          update(base + k, { state: "error", error: e.message });
        }
        onDone();
      }
    };
    for (let w = 0; w < Math.min(3, files.length); w++) worker();
  };
  return (
    <div class={`dropzone ${over ? "over" : ""}`} data-testid="dropzone"
      onDragOver={(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => { e.preventDefault(); setOver(false); start([...e.dataTransfer.files]); }}>
      <p>Drop audio files here, or <button type="button" class="link" onClick={() => input.current.click()}>choose files</button>.</p>
      <input ref={input} type="file" multiple accept="audio/*,.flac,.opus,.ogg,.m4a,.mp3,.wav" class="visually-hidden" aria-label="Upload audio files"
        onChange={(e) => { start([...e.currentTarget.files]); e.currentTarget.value = ""; }} />
      {items.length > 0 && (
        <ul class="uploads" aria-live="polite">
          {items.map((u) => (
            <li class={u.state} data-testid="upload">
              <span class="name">{u.name}</span>
              <progress max={u.size || 1} value={u.sent} aria-label={`Upload of ${u.name}`} />
              <span class="detail">
                {u.state === "uploading" && `${bytes(u.sent)} of ${bytes(u.size)}${u.speed ? ` · ${bytes(u.speed)}/s` : ""}`}
                {u.state === "done" && <a href={`/tracks/${u.track.id}`}>Uploaded</a>}
                {u.state === "duplicate" && <>Already in the library: <a href={`/tracks/${u.track.id}`}>{u.track.title}</a></>}
                {u.state === "error" && <span class="error">{u.error}</span>}
              </span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Row({ t, selected, onSelect, onSaved }) {
  const [edit, setEdit] = useState(false);
  const [error, setError] = useState(null);
  const save = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    try {
      await api(`/api/v1/tracks/${t.id}`, { method: "PATCH", json: { title: f.get("title"), artist: f.get("artist"), album: f.get("album"), visibility: f.get("visibility") } });
      setEdit(false);
      setError(null);
      onSaved();
    } catch (err) {
      setError(err.message);
    }
  };
  if (edit) {
    return (
      <tr class="editing">
        <td colSpan="7">
          <form class="inline-edit" onSubmit={save}>
            <label>Title<input name="title" value={t.title} required /></label>
            <label>Artist<input name="artist" value={t.artist} /></label>
            <label>Album<input name="album" value={t.album} /></label>
            <label>Visibility<select name="visibility" value={t.visibility}>
              <option>public</option><option>unlisted</option><option>private</option>
            </select></label>
            <button type="submit">Save</button>
            <button type="button" class="ghost" onClick={() => setEdit(false)}>Cancel</button>
            {error && <p class="error" role="alert">{error}</p>}
          </form>
        </td>
      </tr>
    );
  }
  return (
    <tr data-testid="track-row" data-id={t.id} data-status={t.status}>
      <td><input type="checkbox" checked={selected} onChange={(e) => onSelect(e.currentTarget.checked)} aria-label={`Select ${t.title}`} /></td>
      <td><a href={`/tracks/${t.id}`}>{t.title}</a><div class="muted small hide-wide">{t.artist}</div></td>
      <td class="hide-narrow">{t.artist}</td>
      <td class="hide-narrow">{t.album}</td>
      <td class="hide-narrow">{clock((t.duration_ms || 0) / 1000)}</td>
      <td><Badge status={t.status} /> <span class="muted small">{t.visibility}</span></td>
      <td><button type="button" class="ghost small" onClick={() => setEdit(true)} aria-label={`Edit ${t.title}`}>Edit</button></td>
    </tr>
  );
}

export function Library() {
  const [q, setQ] = useState("");
  // "" is the server's default: best match first while searching, else newest first.
  const [sort, setSort] = useState("");
  const [status, setStatus] = useState("");
  const [pages, setPages] = useState([null]);
  const [page, setPage] = useState(null);
  const [sel, setSel] = useState(new Set());
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  const cursor = pages[pages.length - 1];
  useEffect(() => {
    const p = new URLSearchParams({ limit: "25" });
    if (sort) p.set("sort", sort);
    if (q.trim()) p.set("q", q.trim());
    if (status) p.set("status", status);
    if (cursor) p.set("cursor", cursor);
    const ctl = new AbortController();
    api(`/api/v1/tracks?${p}`, { signal: ctl.signal }).then(setPage, (e) => e.name !== "AbortError" && setMsg({ error: e.message }));
    return () => ctl.abort();
  }, [q, sort, status, cursor, tick]);
  // Poll while anything is processing, so uploads turn ready by themselves.
  useEffect(() => {
    if (!page || !page.tracks.some((t) => t.status === "processing")) return;
    const timer = setTimeout(() => setTick((n) => n + 1), 1500);
    return () => clearTimeout(timer);
  }, [page]);
  const refresh = () => setTick((n) => n + 1);
  const reset = (f) => (v) => { f(v); setPages([null]); };
  const bulk = async (action) => {
    const ids = [...sel];
    let reason = null;
    if (action === "takedown") {
      reason = prompt(`Reason for taking down ${ids.length} track(s):`);
      if (!reason) return;
    }
    if (action === "delete" && !confirm(`Delete ${ids.length} track(s) and their files? This cannot be undone.`)) return;
    const errors = [];
    for (const id of ids) {
      try {
        if (action === "hide") await api(`/api/v1/tracks/${id}`, { method: "PATCH", json: { visibility: "private" } });
        if (action === "takedown") await api(`/api/v1/tracks/${id}/takedown`, { method: "POST", json: { reason } });
        if (action === "delete") await api(`/api/v1/tracks/${id}`, { method: "DELETE" });
      } catch (e) {
        errors.push(e.message);
      }
    }
    setSel(new Set());
    setMsg(errors.length ? { error: errors.join("; ") } : { ok: `${ids.length} track(s): ${action === "hide" ? "hidden" : action === "takedown" ? "taken down" : "deleted"}.` });
    refresh();
  };
  const tracks = page ? page.tracks : [];
  return (
    <section>
      <div class="page-head"><h1>Library</h1></div>
      <Uploads onDone={refresh} />
      <div class="toolbar">
        <label class="grow">Search<input type="search" value={q} onInput={(e) => reset(setQ)(e.currentTarget.value)} placeholder="Title, artist, album" /></label>
        <label>Status<select value={status} onChange={(e) => reset(setStatus)(e.currentTarget.value)}>
          <option value="">Any</option>{Object.entries(STATUS).map(([k, v]) => <option value={k}>{v}</option>)}
        </select></label>
        <label>Sort<select value={sort} onChange={(e) => reset(setSort)(e.currentTarget.value)}>
          <option value="">{q.trim() ? "Best match" : "Newest"}</option>{(q.trim() || sort === "newest") && <option value="newest">Newest</option>}<option value="oldest">Oldest</option><option value="title">Title</option><option value="artist">Artist</option><option value="album">Album</option>
        </select></label>
      </div>
      {sel.size > 0 && (
        <div class="bulk" role="region" aria-label="Selected tracks">
          <span>{sel.size} selected</span>
          <button type="button" class="ghost" onClick={() => bulk("hide")}>Hide</button>
          <button type="button" class="ghost" onClick={() => bulk("takedown")}>Take down</button>
          <button type="button" class="danger" onClick={() => bulk("delete")}>Delete</button>
        </div>
      )}
      {msg && <p class={msg.error ? "error" : "ok"} role="status">{msg.error || msg.ok}</p>}
      <div class="table-wrap">
        <table class="tracks">
          <thead>
            <tr>
              <th><input type="checkbox" aria-label="Select all" checked={tracks.length > 0 && tracks.every((t) => sel.has(t.id))}
                onChange={(e) => setSel(e.currentTarget.checked ? new Set(tracks.map((t) => t.id)) : new Set())} /></th>
              <th>Title</th><th class="hide-narrow">Artist</th><th class="hide-narrow">Album</th><th class="hide-narrow">Length</th><th>Status</th><th><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {tracks.map((t) => (
              <Row key={t.id} t={t} selected={sel.has(t.id)} onSaved={refresh}
                onSelect={(on) => setSel((s) => { const n = new Set(s); on ? n.add(t.id) : n.delete(t.id); return n; })} />
            ))}
          </tbody>
        </table>
        {page && tracks.length === 0 && <p class="empty">No tracks{q ? ` match “${q}”` : " yet: drop some audio files above"}.</p>}
      </div>
      <div class="pager">
        <button type="button" class="ghost" disabled={pages.length < 2} onClick={() => setPages((p) => p.slice(0, -1))}>Previous</button>
        <span class="muted">Page {pages.length}</span>
        <button type="button" class="ghost" disabled={!page || !page.next_cursor} onClick={() => setPages((p) => [...p, page.next_cursor])}>Next</button>
      </div>
    </section>
  );
}
