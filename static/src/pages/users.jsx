// Users and API tokens (admin): create, change role, disable, delete; tokens and Subsonic app
// passwords shown once.
import { useEffect, useState } from "preact/hooks";
import { api, when } from "../lib/api.js";
import { me } from "../lib/nav.js";

function UsersCard() {
  const [users, setUsers] = useState([]);
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  const [appPassword, setAppPassword] = useState(null);
  useEffect(() => {
    api("/api/v1/users").then((r) => setUsers(r.users), (e) => setMsg({ error: e.message }));
  }, [tick]);
  const run = async (f, ok) => {
    try {
      await f();
      setMsg({ ok });
      setTick((n) => n + 1);
    } catch (e) {
      setMsg({ error: e.message });
    }
  };
  const create = (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    run(async () => {
      await api("/api/v1/users", { method: "POST", json: { username: f.get("username"), password: f.get("password"), role: f.get("role") } });
      form.reset();
    }, `Created ${f.get("username")}.`);
  };
  const patch = (u, json, ok) => run(() => api(`/api/v1/users/${u.id}`, { method: "PATCH", json }), ok);
  const newAppPassword = (u) => run(async () => {
    setAppPassword(await api(`/api/v1/users/${u.id}/app-password`, { method: "POST" }));
  }, `New app password for ${u.username}.`);
  return (
    <div class="card">
      <h2>Users</h2>
      {appPassword && (
        <div class="notice" role="status" data-testid="new-app-password">
          <p>App password for {appPassword.username}, for Subsonic apps (see PLAYERS.md). Copy it now: it is not shown again.</p>
          <code class="wrap">{appPassword.app_password}</code>
        </div>
      )}
      <div class="table-wrap">
        <table>
          <thead><tr><th>User</th><th>Role</th><th class="hide-narrow">Last login</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>{users.map((u) => (
            <tr data-testid="user-row">
              <td>{u.username}{u.disabled && <span class="badge failed">disabled</span>}</td>
              <td><select value={u.role} aria-label={`Role of ${u.username}`} disabled={u.id === me.value.id}
                onChange={(e) => patch(u, { role: e.currentTarget.value }, `${u.username} is now ${e.currentTarget.value}.`)}>
                <option>admin</option><option>editor</option><option>listener</option></select></td>
              <td class="hide-narrow">{when(u.last_login_at)}</td>
              <td class="row-actions">
                <button type="button" class="ghost small" onClick={() => newAppPassword(u)}>App password</button>
                {u.id !== me.value.id && <>
                <button type="button" class="ghost small" onClick={() => patch(u, { disabled: !u.disabled }, `${u.username} ${u.disabled ? "enabled" : "disabled"}.`)}>{u.disabled ? "Enable" : "Disable"}</button>
                <button type="button" class="danger small" onClick={() => confirm(`Delete ${u.username}?`) && run(() => api(`/api/v1/users/${u.id}`, { method: "DELETE" }), `Deleted ${u.username}.`)}>Delete</button>
              </>}</td>
            </tr>
          ))}</tbody>
        </table>
      </div>
      <form class="inline-edit" onSubmit={create}>
        <label>Username<input name="username" required autocomplete="off" /></label>
        <label>Password<input name="password" type="password" required minLength={10} autocomplete="new-password" /></label>
        <label>Role<select name="role"><option>editor</option><option>admin</option><option>listener</option></select></label>
        <button type="submit">Create user</button>
      </form>
      {msg && <p class={msg.error ? "error" : "ok"} role="status">{msg.error || msg.ok}</p>}
    </div>
  );
}

function TokensCard() {
  const [tokens, setTokens] = useState([]);
  const [created, setCreated] = useState(null);
  const [msg, setMsg] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api("/api/v1/tokens").then((r) => setTokens(r.tokens), (e) => setMsg(e.message));
  }, [tick]);
  const create = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = new FormData(form);
    const days = Number(f.get("days"));
    try {
      setCreated(await api("/api/v1/tokens", { method: "POST", json: days ? { name: f.get("name"), expires_days: days } : { name: f.get("name") } }));
      form.reset();
      setTick((n) => n + 1);
    } catch (err) {
      setMsg(err.message);
    }
  };
  const revoke = async (t) => {
    try {
      await api(`/api/v1/tokens/${t.id}`, { method: "DELETE" });
      setTick((n) => n + 1);
    } catch (e) {
      setMsg(e.message);
    }
  };
  return (
    <div class="card">
      <h2>API tokens</h2>
      {created && (
        <div class="notice" role="status" data-testid="new-token">
          <p>Token “{created.name}” created. Copy it now: it is not shown again.</p>
          <code class="wrap">{created.token}</code>
        </div>
      )}
      <div class="table-wrap">
        <table>
          <thead><tr><th>Name</th><th>Owner</th><th class="hide-narrow">Expires</th><th class="hide-narrow">Last used</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>{tokens.map((t) => (
            <tr data-testid="token-row">
              <td>{t.name}{t.revoked_at && <span class="badge failed">revoked</span>}</td>
              <td>{t.username}</td>
              <td class="hide-narrow">{t.expires_at ? when(t.expires_at) : "never"}</td>
              <td class="hide-narrow">{when(t.last_used_at)}</td>
              <td>{!t.revoked_at && <button type="button" class="danger small" onClick={() => revoke(t)}>Revoke</button>}</td>
            </tr>
          ))}</tbody>
        </table>
      </div>
      <form class="inline-edit" onSubmit={create}>
        <label>Name<input name="name" required autocomplete="off" /></label>
        <label>Expires in days<input name="days" type="number" min="1" max="3650" placeholder="never" /></label>
        <button type="submit">Create token</button>
      </form>
      {msg && <p class="error" role="alert">{msg}</p>}
    </div>
  );
}

export function Users() {
  return (
    <section>
      <div class="page-head"><h1>Users &amp; tokens</h1></div>
      <UsersCard />
      <TokensCard />
    </section>
  );
}
