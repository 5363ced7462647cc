// Shows readiness on the landing page; no third-party code, works offline.
(async () => {
  const el = document.getElementById("status");
  try {
    const [health, ready] = await Promise.all([fetch("/healthz"), fetch("/readyz")]);
    const h = await health.json();
    const r = await ready.json();
    el.textContent = `Veza ${h.version}: ${r.status === "ok" ? "ready" : "not ready (" + JSON.stringify(r.checks) + ")"}`;
    el.className = r.status === "ok" ? "ok" : "bad";
  } catch (e) {
    el.textContent = "Could not reach the server: " + e;
    el.className = "bad";
  }
})();
