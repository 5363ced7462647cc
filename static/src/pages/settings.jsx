// Settings: the effective configuration, secrets masked by the server.
import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api.js";

export function Settings() {
  const [cfg, setCfg] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api("/api/v1/settings").then(setCfg, (e) => setError(e.message));
  }, []);
  return (
    <section>
      <div class="page-head"><h1>Settings</h1></div>
      <p class="muted">The effective configuration (defaults, /etc/veza/veza.toml, environment). Secrets show as ****. Change it in the file or environment and restart.</p>
      {error && <p class="error" role="alert">{error}</p>}
      {cfg && <pre class="config" tabIndex="0" data-testid="config">{cfg.text}</pre>}
    </section>
  );
}
