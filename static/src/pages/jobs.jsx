// Jobs: filter by state, see errors, retry.
import { useEffect, useState } from "preact/hooks";
import { api, when } from "../lib/api.js";

export function Jobs() {
  const [state, setState] = useState("");
  const [page, setPage] = useState(null);
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api(`/api/v1/jobs?limit=100${state ? `&state=${state}` : ""}`).then(setPage, (e) => setMsg(e.message));
  }, [state, tick]);
  const retry = async (id) => {
    try {
      await api(`/api/v1/jobs/${id}/retry`, { method: "POST" });
      setTick((n) => n + 1);
    } catch (e) {
      setMsg(e.message);
    }
  };
  return (
    <section>
      <div class="page-head"><h1>Jobs</h1>
        <label>State<select value={state} onChange={(e) => setState(e.currentTarget.value)}>
          <option value="">Any</option>{["queued", "running", "succeeded", "failed", "dead"].map((s) => <option>{s}</option>)}
        </select></label>
      </div>
      {page && !page.hls.available && <p class="warn" role="status">HLS packaging is off: {page.hls.reason}</p>}
      {msg && <p class="error" role="alert">{msg}</p>}
      <div class="table-wrap">
        <table>
          <thead><tr><th>Job</th><th>Track</th><th>State</th><th class="hide-narrow">Updated</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>{page && page.jobs.map((j) => (
            <tr>
              <td>#{j.id} {j.kind}<div class="muted small">attempt {j.attempts}/{j.max_attempts}</div>{j.last_error && <pre class="errtext">{j.last_error}</pre>}</td>
              <td>{j.track_id ? <a href={`/tracks/${j.track_id}`}>{j.track_id.slice(0, 8)}…</a> : "–"}</td>
              <td><span class={`badge ${j.state}`}>{j.state}</span></td>
              <td class="hide-narrow">{when(j.updated_at)}</td>
              <td>{(j.state === "dead" || j.state === "failed") && <button type="button" class="ghost small" onClick={() => retry(j.id)}>Retry</button>}</td>
            </tr>
          ))}</tbody>
        </table>
        {page && page.jobs.length === 0 && <p class="empty">No jobs{state ? ` in state ${state}` : ""}.</p>}
      </div>
    </section>
  );
}
