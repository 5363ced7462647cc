// First-run setup: posts the link's token with the new admin's name and password.
(() => {
  const form = document.getElementById("setup");
  const status = document.getElementById("status");
  const token = new URLSearchParams(location.search).get("token") || "";
  // Keep the one-time token out of the history and any later referrer.
  history.replaceState(null, "", location.pathname);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const resp = await fetch("/api/v1/setup", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, username: data.get("username"), password: data.get("password") }),
    });
    if (resp.status === 201) {
      status.textContent = "Admin created. You can log in now.";
      status.className = "ok";
      form.remove();
    } else {
      const body = await resp.json().catch(() => ({}));
      status.textContent = (body.error && body.error.message) || `Setup failed (${resp.status})`;
      status.className = "bad";
    }
  });
})();
