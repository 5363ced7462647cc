// The admin dashboard: a small client-side router over the JSON API.
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { api, setCsrf } from "./lib/api.js";
import { startVitals } from "./lib/vitals.js";
import { me, navigate, path } from "./lib/nav.js";
import { Login, Setup } from "./pages/auth.jsx";
import { Overview } from "./pages/overview.jsx";
import { Library } from "./pages/library.jsx";
import { TrackPage } from "./pages/track.jsx";
import { Jobs } from "./pages/jobs.jsx";
import { Users } from "./pages/users.jsx";
import { Settings } from "./pages/settings.jsx";
import "./app.css";

startVitals(location.pathname.split("/")[1] || "overview");

addEventListener("popstate", () => (path.value = location.pathname));
// Same-origin links route in place; modified clicks and downloads behave as usual.
document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[href^='/']");
  if (!a || a.target || a.hasAttribute("download") || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  if (/^\/(api|media|embed|metrics|healthz|readyz)\b/.test(a.getAttribute("href"))) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});

async function loadMe() {
  try {
    const r = await api("/api/v1/me");
    setCsrf(r.csrf_token);
    me.value = r.user;
  } catch {
    me.value = false;
  }
}

const NAV = [
  ["/", "Overview"],
  ["/library", "Library"],
  ["/jobs", "Jobs"],
  ["/users", "Users & tokens", "admin"],
  ["/settings", "Settings", "admin"],
];

function Shell({ children }) {
  const p = path.value;
  const logout = async () => {
    await api("/api/v1/auth/logout", { method: "POST" }).catch(() => {});
    me.value = false;
    navigate("/login");
  };
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/">Veza</a>
        <nav aria-label="Main">
          {NAV.filter((n) => !n[2] || me.value.role === "admin").map(([href, label]) => (
            <a href={href} aria-current={(href === "/" ? p === "/" : p.startsWith(href)) ? "page" : undefined}>{label}</a>
          ))}
        </nav>
        <span class="who">{me.value.username}</span>
        <button type="button" class="ghost" onClick={logout}>Log out</button>
      </header>
      <main id="main" tabIndex="-1">{children}</main>
    </div>
  );
}

function Route() {
  const p = path.value;
  if (p === "/setup") return <Setup />;
  if (me.value === null) return <main class="center" aria-busy="true"><p class="muted">Loading…</p></main>;
  if (me.value === false || p === "/login") {
    if (me.value && p === "/login") {
      navigate("/");
      return null;
    }
    return <Login />;
  }
  let page;
  if (p === "/") page = <Overview />;
  else if (p === "/library") page = <Library />;
  else if (p.startsWith("/tracks/")) page = <TrackPage id={decodeURIComponent(p.slice(8))} />;
  else if (p === "/jobs") page = <Jobs />;
  else if (p === "/users") page = <Users />;
  else if (p === "/settings") page = <Settings />;
  else page = <section><h1>Not found</h1><p>No page at {p}. <a href="/">Go to the overview</a>.</p></section>;
  return <Shell>{page}</Shell>;
}

function App() {
  useEffect(() => {
    loadMe();
  }, []);
  return <Route />;
}

render(<App />, document.getElementById("root"));
