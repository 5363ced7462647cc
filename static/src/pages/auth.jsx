// Log in, and the first-run setup page (the one-time link from the server's log).
import { useState } from "preact/hooks";
import { api, setCsrf } from "../lib/api.js";
import { me, navigate } from "../lib/nav.js";

function Card({ title, children }) {
  return (
    <main class="center">
      <div class="card auth">
        <p class="brand big">Veza</p>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

export function Login() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      const r = await api("/api/v1/auth/login", { method: "POST", json: { username: f.get("username"), password: f.get("password") } });
      setCsrf(r.csrf_token);
      me.value = r.user;
      navigate(location.pathname === "/login" ? "/" : location.pathname);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title="Log in">
      <form onSubmit={submit} class="stack">
        <label>Username<input name="username" autocomplete="username" required /></label>
        <label>Password<input name="password" type="password" autocomplete="current-password" required /></label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
      </form>
    </Card>
  );
}

// The token is read once and dropped from the address bar and from later referrers.
const setupToken = new URLSearchParams(location.search).get("token") || "";
if (location.pathname === "/setup" && setupToken) history.replaceState(null, "", "/setup");

export function Setup() {
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setError(null);
    try {
      await api("/api/v1/setup", { method: "POST", json: { token: setupToken, username: f.get("username"), password: f.get("password") } });
      setDone(true);
    } catch (err) {
      setError(err.message);
    }
  };
  if (done) {
    return (
      <Card title="Admin created">
        <p role="status">The first admin exists. You can log in now.</p>
        <a class="button" href="/login">Log in</a>
      </Card>
    );
  }
  return (
    <Card title="Create the first admin">
      <p class="muted">This link works once, for an hour after Veza started. Afterwards use <code>veza admin create</code> on the server.</p>
      <form onSubmit={submit} class="stack">
        <label>Username<input name="username" autocomplete="username" required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}" /></label>
        <label>Password (10 characters or more)<input name="password" type="password" autocomplete="new-password" required minLength={10} /></label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit">Create admin</button>
      </form>
    </Card>
  );
}
