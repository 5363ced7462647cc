// One track: metadata and cover, renditions, job history, audit trail, the player, copy buttons.
import { useEffect, useState } from "preact/hooks";
import { api, bytes, clock, when } from "../lib/api.js";
import { Player } from "../lib/Player.jsx";
import { navigate } from "../lib/nav.js";
import { Badge } from "./library.jsx";

function Copy({ label, text }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      setDone(false);
    }
  };
  return (
    <div class="copy">
      <label>{label}<input readOnly value={text} onFocus={(e) => e.currentTarget.select()} /></label>
      <button type="button" class="ghost" onClick={copy}>{done ? "Copied" : "Copy"}</button>
    </div>
  );
}

function Field({ k, v }) {
  return <><dt>{k}</dt><dd>{v ?? "–"}</dd></>;
}

export function TrackPage({ id }) {
  const [t, setT] = useState(null);
  const [jobs, setJobs] = useState([]);
  const [audit, setAudit] = useState([]);
  const [stream, setStream] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api(`/api/v1/tracks/${encodeURIComponent(id)}`).then(setT, (e) => setError(e.message));
    api(`/api/v1/jobs?track_id=${encodeURIComponent(id)}`).then((r) => setJobs(r.jobs), () => {});
    api(`/api/v1/tracks/${encodeURIComponent(id)}/audit`).then(setAudit, () => {});
  }, [id, tick]);
  useEffect(() => {
    if (t && t.status === "ready") api(`/api/v1/tracks/${t.id}/stream`).then(setStream, () => setStream(null));
    if (t && t.status === "processing") {
      const timer = setTimeout(() => setTick((n) => n + 1), 1500);
      return () => clearTimeout(timer);
    }
  }, [t && t.status, tick]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!t) return <p class="muted" aria-busy="true">Loading…</p>;
  const embedUrl = `${location.origin}/embed/${t.id}`;
  const snippet = `<iframe src="${embedUrl}" width="100%" height="120" frameborder="0" allow="autoplay" title="${t.title.replace(/"/g, "&quot;")}"></iframe>`;
  const act = async (what) => {
    try {
      if (what === "takedown") {
        const reason = prompt("Why is this track taken down?");
        if (!reason) return;
        await api(`/api/v1/tracks/${t.id}/takedown`, { method: "POST", json: { reason } });
      } else if (what === "restore") {
        await api(`/api/v1/tracks/${t.id}/restore`, { method: "POST", json: {} });
      } else if (what === "delete") {
        if (!confirm(`Delete “${t.title}” and its files? This cannot be undone.`)) return;
        await api(`/api/v1/tracks/${t.id}`, { method: "DELETE" });
        return navigate("/library");
      }
      setTick((n) => n + 1);
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <section class="track">
      <p><a href="/library">← Library</a></p>
      <div class="track-head">
        {t.has_cover ? <img class="cover big" src={`/api/v1/tracks/${t.id}/cover`} alt={`Cover of ${t.title}`} width="160" height="160" /> : <div class="cover big placeholder" aria-hidden="true">♪</div>}
        <div class="grow">
          <h1>{t.title}</h1>
          <p class="muted">{[t.artist, t.album].filter(Boolean).join(" · ") || "Unknown artist"}</p>
          <p><Badge status={t.status} /> <span class="muted">{t.visibility}</span></p>
          {t.status_detail && <p class="error">{t.status_detail}</p>}
          <div class="actions">
            {t.status === "taken_down" ? <button type="button" class="ghost" onClick={() => act("restore")}>Restore</button> : <button type="button" class="ghost" onClick={() => act("takedown")}>Take down</button>}
            <button type="button" class="danger" onClick={() => act("delete")}>Delete</button>
          </div>
        </div>
      </div>
      <div class="card"><h2>Player</h2>
        {t.status === "taken_down" ? <p class="player-error" role="alert">This track is unavailable (taken down).</p> : t.status === "ready" ? <Player key={`${t.id}-${t.status}`} track={t} /> : <p class="muted">Playable once it is ready.</p>}
      </div>
      <div class="grid two">
        <div class="card">
          <h2>Details</h2>
          <dl class="fields">
            <Field k="Length" v={clock((t.duration_ms || 0) / 1000)} />
            <Field k="Codec" v={t.codec} />
            <Field k="Bitrate" v={t.bitrate_kbps && `${t.bitrate_kbps} kb/s`} />
            <Field k="Sample rate" v={t.sample_rate && `${t.sample_rate} Hz`} />
            <Field k="Channels" v={t.channels} />
            <Field k="Size" v={bytes(t.size_bytes)} />
            <Field k="Added" v={when(t.created_at)} />
            <Field k="Album artist" v={t.album_artist || null} />
            <Field k="Genre" v={t.genre || null} />
            <Field k="Year" v={t.year} />
            <Field k="Plays" v={t.last_played_at ? `${t.play_count} (last ${when(t.last_played_at)})` : t.play_count} />
            <Field k="SHA-256" v={<code class="wrap">{t.sha256}</code>} />
          </dl>
        </div>
        <div class="card">
          <h2>Renditions</h2>
          <ul class="plain">
            <li>Original: {t.content_type}, {bytes(t.size_bytes)}</li>
            <li>HLS: {t.has_hls ? "ready" : t.status === "processing" ? "packaging…" : "none"}</li>
          </ul>
          <h2>Share</h2>
          {stream && <Copy label="Stream URL (expires)" text={stream.url} />}
          <Copy label="Embed snippet" text={snippet} />
        </div>
      </div>
      <div class="grid two">
        <div class="card">
          <h2>Jobs</h2>
          {jobs.length === 0 ? <p class="muted">No jobs.</p> : (
            <ul class="plain">{jobs.map((j) => (
              <li>{j.kind} · <span class={`badge ${j.state}`}>{j.state}</span> · attempt {j.attempts}/{j.max_attempts} · {when(j.updated_at)}
                {j.last_error && <pre class="errtext">{j.last_error}</pre>}</li>
            ))}</ul>
          )}
        </div>
        <div class="card">
          <h2>Audit trail</h2>
          {audit.length === 0 ? <p class="muted">Nothing recorded.</p> : (
            <ul class="plain">{audit.map((a) => <li>{when(a.at)} · {a.action} by {a.actor}{a.reason ? `: ${a.reason}` : ""}</li>)}</ul>
          )}
        </div>
      </div>
    </section>
  );
}
