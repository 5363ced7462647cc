// Overview: health, versions, storage, jobs, tracks, the CDN with a test-signing button, and
// the last 24 hours from the server's per-minute ring buffer.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, bytes } from "../lib/api.js";
import { Plot } from "../lib/Plot.jsx";

function uptime(s) {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
}

function Stat({ label, value, tone }) {
  return (
    <div class={`stat ${tone || ""}`}>
      <span class="stat-label">{label}</span>
      <span class="stat-value">{value}</span>
    </div>
  );
}

function series(samples) {
  const t = samples.map((s) => s.t);
  const rate = (f) => samples.map((s) => (s.secs > 0 ? f(s) / s.secs : null));
  return {
    requests: [t, ...[1, 2, 3, 4].map((i) => rate((s) => s.requests[i]))],
    media: [t, rate((s) => s.media_bytes)],
    streams: [t, samples.map((s) => s.stream_urls), samples.map((s) => s.fallbacks)],
    jobs: [t, samples.map((s) => s.jobs_done), samples.map((s) => s.jobs_failed)],
    lcp: [t, samples.map((s) => s.lcp_p75)],
    inp: [t, samples.map((s) => (s.inp_p75 == null ? null : s.inp_p75 * 1000))],
    cls: [t, samples.map((s) => s.cls_p75)],
  };
}

// Google's thresholds: good up to the first, poor beyond the second.
const VITALS = [
  ["lcp_p75", "LCP", [2.5, 4], (v) => `${v.toFixed(2)} s`],
  ["inp_p75", "INP", [0.2, 0.5], (v) => `${Math.round(v * 1000)} ms`],
  ["cls_p75", "CLS", [0.1, 0.25], (v) => v.toFixed(3)],
];

function VitalsByRoute({ routes }) {
  if (!routes.length) return <p class="muted">No web-vitals beacons yet.</p>;
  return (
    <div class="table-wrap">
      <table data-testid="vitals">
        <thead><tr><th>Route</th><th>Loads</th>{VITALS.map((v) => <th>{v[1]} p75</th>)}</tr></thead>
        <tbody>{routes.map((r) => (
          <tr>
            <td>{r.route}</td>
            <td>{r.samples}</td>
            {VITALS.map(([k, , [good, poor], fmt]) => {
              const v = r[k];
              if (v == null) return <td class="muted">–</td>;
              const [tone, word] = v <= good ? ["ok", "good"] : v <= poor ? ["warn", "needs improvement"] : ["error", "poor"];
              return <td class={tone} title={word}>{fmt(v)} <span class="visually-hidden">({word})</span></td>;
            })}
          </tr>
        ))}</tbody>
      </table>
    </div>
  );
}

function TestSigning() {
  const [result, setResult] = useState(null);
  const run = async () => {
    setResult({ busy: true });
    try {
      const page = await api("/api/v1/tracks?status=ready&limit=1");
      const track = page.tracks[0];
      if (!track) return setResult({ error: "Upload a track first: the test signs a URL for a real object." });
      const started = performance.now();
      const s = await api(`/api/v1/tracks/${track.id}/stream?format=original`);
      const r = await fetch(s.url, { headers: { range: "bytes=0-1023" }, cache: "no-store" });
      const ms = Math.round(performance.now() - started);
      setResult({ ok: r.ok, text: `${r.status} in ${ms} ms via ${s.provider}${s.fallback ? " (fallback)" : ""}`, title: track.title });
    } catch (e) {
      setResult({ error: e.message });
    }
  };
  return (
    <div class="test-signing">
      <button type="button" onClick={run} disabled={result && result.busy}>Test signing</button>
      {result && !result.busy && (
        <p role="status" class={result.ok ? "ok" : "error"} data-testid="signing-result">
          {result.error || `${result.text} (“${result.title}”)`}
        </p>
      )}
    </div>
  );
}

export function Overview() {
  const [data, setData] = useState(null);
  const [ready, setReady] = useState(null);
  const [error, setError] = useState(null);
  const xRange = useRef(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const [d, r] = await Promise.all([api("/api/v1/stats?window=24h"), fetch("/readyz").then((x) => x.json())]);
        if (!stop) {
          setData(d);
          setReady(r);
        }
      } catch (e) {
        if (!stop) setError(e.message);
      }
    };
    load();
    const timer = setInterval(load, 15000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, []);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!data || !ready) return <p class="muted" aria-busy="true">Loading…</p>;
  const s = series(data.samples);
  const lastSample = data.samples[data.samples.length - 1];
  const end = lastSample ? lastSample.t + lastSample.secs : Date.now() / 1000;
  xRange.current = [end - 86400, end];
  const common = { xRange };
  const checks = Object.entries(ready.checks);
  const ms = (v) => `${Math.round(v)} ms`;
  return (
    <section>
      <div class="page-head">
        <h1>Overview</h1>
        <span class="muted">Veza {data.version} ({data.commit}) · up {uptime(data.uptime_secs)}</span>
      </div>
      <div class="grid cards">
        <div class="card">
          <h2>Health</h2>
          <ul class="checks" data-testid="health">
            {checks.map(([k, v]) => (
              <li class={v === "ok" ? "ok" : "bad"}><span class="dot" aria-hidden="true" />{k}: {v === "ok" ? "ok" : v}</li>
            ))}
          </ul>
        </div>
        <div class="card">
          <h2>Tracks</h2>
          <div class="stats">
            {Object.entries(data.tracks).map(([k, v]) => <Stat label={k.replace("_", " ")} value={v} tone={k === "failed" && v ? "bad" : ""} />)}
          </div>
        </div>
        <div class="card">
          <h2>Job queue</h2>
          <div class="stats">
            <Stat label="waiting" value={data.jobs.queued} />
            <Stat label="out of attempts" value={data.jobs.dead} tone={data.jobs.dead ? "bad" : ""} />
          </div>
          <a href="/jobs">See jobs</a>
        </div>
        <div class="card">
          <h2>Storage</h2>
          <p class="muted small">{data.storage_scanned_at ? `As of ${new Date(data.storage_scanned_at * 1000).toLocaleTimeString()}` : "Not scanned yet"}</p>
          <table class="compact">
            <tbody>
              {data.storage.map((a) => (
                <tr><th scope="row">{a.area}</th><td>{bytes(a.bytes)}</td><td>{a.objects} objects</td></tr>
              ))}
            </tbody>
          </table>
        </div>
        <div class="card">
          <h2>CDN</h2>
          <p>{data.cdn.enabled ? `${data.cdn.provider} at ${data.cdn.base_url || "–"}` : "No CDN: Veza signs its own /media/ URLs."}</p>
          <TestSigning />
        </div>
      </div>
      <h2>Web vitals by route (p75 since start)</h2>
      <VitalsByRoute routes={data.rum_routes} />
      <h2>Last 24 hours</h2>
      <div class="grid plots" data-testid="plots" data-points={data.samples.length}>
        <Plot {...common} title="Requests/s by status" data={s.requests} yFormat={(v) => v.toFixed(2)}
          series={[{ label: "2xx", color: "#16a34a" }, { label: "3xx", color: "#2563eb" }, { label: "4xx", color: "#d97706" }, { label: "5xx", color: "#dc2626" }]} />
        <Plot {...common} title="Bytes/s served by /media/" data={s.media} yFormat={bytes} series={[{ label: "bytes/s", color: "#7c3aed", fill: "rgba(124,58,237,0.12)" }]} />
        <Plot {...common} title="Stream URLs issued per minute" data={s.streams} series={[{ label: "signed", color: "#0891b2" }, { label: "fallbacks", color: "#dc2626" }]} />
        <Plot {...common} title="Jobs per minute" data={s.jobs} series={[{ label: "done", color: "#16a34a" }, { label: "failed", color: "#dc2626" }]} />
        <Plot {...common} title="LCP p75 (s)" data={s.lcp} bands={[2.5, 4]} yFormat={(v) => v.toFixed(1)} series={[{ label: "LCP", color: "#0f766e" }]} />
        <Plot {...common} title="INP p75 (ms)" data={s.inp} bands={[200, 500]} yFormat={ms} series={[{ label: "INP", color: "#0f766e" }]} />
        <Plot {...common} title="CLS p75" data={s.cls} bands={[0.1, 0.25]} yFormat={(v) => v.toFixed(2)} series={[{ label: "CLS", color: "#0f766e" }]} />
      </div>
    </section>
  );
}
