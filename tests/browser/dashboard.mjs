// The dashboard and the embed player, end to end in headless Chromium against a running Veza.
// Driven by tests/it/dashboard.rs, which starts the server and passes:
//   VEZA_URL      http://127.0.0.1:port
//   SETUP_URL     the first-run setup link from the server's log
//   TRACKS        two audio files, separated by ':'
//   SHOTS         folder for screenshots
// Prints one JSON line of measurements on success; throws (exit 1) on the first failure.
import { chromium } from "playwright-core";
import { readFile, mkdir } from "node:fs/promises";
import path from "node:path";
import assert from "node:assert/strict";
import http from "node:http";

const base = process.env.VEZA_URL;
const shots = process.env.SHOTS;
const tracks = process.env.TRACKS.split(":");
const USER = "admin";
const PASS = "correct horse battery";
await mkdir(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Playwright gives every launch a fresh, empty --user-data-dir of its own.
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});

const problems = [];
process.on("exit", (code) => code && problems.length && console.error("also seen:\n" + problems.join("\n")));
const media = [];
const measured = {};

/** A page that records console errors, page errors, CSP violations and /media/ responses. */
async function open(ctx) {
  const page = await ctx.newPage();
  page.on("console", (m) => {
    // Signed out, the app's first GET /api/v1/me is a 401 by design; Chromium logs it.
    const signedOutCheck = m.location().url.endsWith("/api/v1/me") && m.text().includes("401");
    if (m.type() === "error" && !signedOutCheck) problems.push(`console error on ${page.url()}: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/media/")) media.push({ url: r.url(), status: r.status() });
  });
  return page;
}

async function newContext(opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: "light", ...opts });
  await ctx.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  return ctx;
}

/** LCP of the current page load, from the browser's own entries. */
function lcp(page) {
  return page.evaluate(() => new Promise((resolve) => {
    new PerformanceObserver((list) => {
      const all = list.getEntries();
      resolve(all[all.length - 1].startTime);
    }).observe({ type: "largest-contentful-paint", buffered: true });
    setTimeout(() => resolve(null), 3000);
  }));
}

async function shoot(page, name) {
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 360]) {
      await page.setViewportSize({ width, height: width === 360 ? 780 : 860 });
      await page.waitForTimeout(150);
      await page.screenshot({ path: path.join(shots, `${name}-${scheme}-${width}.png`), fullPage: true });
    }
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 1280, height: 860 });
}

async function playsPast2s(page, where) {
  const before = media.length;
  await page.getByRole("button", { name: "Play" }).click();
  await page.waitForFunction(() => document.querySelector("audio").currentTime > 2, null, { timeout: 30000 });
  const got = media.slice(before);
  const segments = got.filter((m) => !m.url.includes(".m3u8") && m.status < 300);
  assert.ok(segments.length > 0, `${where}: no segment came through /media/: ${JSON.stringify(got)}`);
  // Signed: the path carries a token for the track's hls/ folder (no bare /media/ URLs).
  for (const m of got) assert.match(m.url, /\/media\/vzt\.\d+\.[a-z0-9]+\.[^/]+\//, `${where}: unsigned media URL ${m.url}`);
  return segments.length;
}

const t0 = Date.now();
const ctx = await newContext();
const page = await open(ctx);
page.on("dialog", (d) => d.accept(d.type() === "prompt" ? "copyright claim (test)" : undefined));

// --- First-run setup, then log in --------------------------------------------------------
const setup = new URL(process.env.SETUP_URL);
await page.goto(base + setup.pathname + setup.search);
assert.equal(new URL(page.url()).search, "", "the setup token stays out of the address bar");
await shoot(page, "setup");
await page.getByLabel("Username").fill(USER);
await page.getByLabel(/Password/).fill(PASS);
await page.getByRole("button", { name: "Create admin" }).click();
await page.getByText("The first admin exists").waitFor();
await page.getByRole("link", { name: "Log in" }).click();
await page.getByLabel("Username").fill(USER);
await page.getByLabel("Password").fill(PASS);
await shoot(page, "login");
await page.getByRole("button", { name: "Log in" }).click();
await page.getByRole("heading", { name: "Overview" }).waitFor();

// --- Upload two tracks by drag and drop; both become ready -------------------------------
await page.getByRole("link", { name: "Library" }).click();
const files = await Promise.all(tracks.map(async (f) => ({ name: path.basename(f), b64: (await readFile(f)).toString("base64") })));
const drop = await page.evaluateHandle((files) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bin = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bin], f.name, { type: "audio/mpeg" }));
  }
  return dt;
}, files);
await page.dispatchEvent("[data-testid=dropzone]", "drop", { dataTransfer: drop });
await page.locator("[data-testid=upload].done").nth(1).waitFor({ timeout: 60000 });
await page.locator("[data-testid=track-row][data-status=ready]").nth(1).waitFor({ timeout: 120000 });
measured.upload_to_ready_ms = Date.now() - t0;
// The same file again is a duplicate with a link to the existing track.
await page.setInputFiles("input[type=file]", tracks[0]);
await page.locator("[data-testid=upload].duplicate").waitFor();
// Not audio: a clear per-file error, not a silent failure.
await page.setInputFiles("input[type=file]", { name: "notes.mp3", mimeType: "audio/mpeg", buffer: Buffer.from("these are not the sounds you are looking for\n".repeat(50)) });
const refused = page.locator("[data-testid=upload].error");
await refused.waitFor();
measured.not_audio_error = await refused.locator(".detail").innerText();
assert.ok(measured.not_audio_error.length > 5, "the refusal says why");
// Chromium logs the expected 415 as a console error.
for (let i = problems.length - 1; i >= 0; i--) if (/status of 415/.test(problems[i])) problems.splice(i, 1);
await shoot(page, "library");

// --- Track page: play through the signed URL flow ----------------------------------------
const first = page.locator("[data-testid=track-row]").first();
const id = await first.getAttribute("data-id");
await first.getByRole("link").click();
await page.getByRole("heading", { level: 2, name: "Player" }).waitFor();
measured.track_segments = await playsPast2s(page, "track page");
await page.getByRole("button", { name: "Pause" }).click();
assert.ok((await page.getByLabel("Embed snippet").inputValue()).includes(`/embed/${id}`));
await shoot(page, "track");

// --- The embed, inside a third-party page -------------------------------------------------
const third = await open(await newContext());
// A page of another origin (a second loopback server: another port) frames the player.
const blogServer = http.createServer((_q, r) => {
  r.writeHead(200, { "content-type": "text/html" });
  r.end(`<h1>A blog</h1><iframe src="${base}/embed/${id}" width="480" height="120" allow="autoplay"></iframe>`);
});
await new Promise((ok) => blogServer.listen(0, "127.0.0.1", ok));
await third.goto(`http://127.0.0.1:${blogServer.address().port}/`);
const frame = third.frameLocator("iframe");
await frame.getByRole("button", { name: "Play" }).click();
await third.waitForFunction(() => true);
const inFrame = third.frames().find((f) => f.url().includes("/embed/"));
await inFrame.waitForFunction(() => document.querySelector("audio").currentTime > 2, null, { timeout: 30000 });

// --- The embed on its own: LCP, plays, then taken down while open ------------------------
const embed = await open(await newContext());
const resp = await embed.goto(`${base}/embed/${id}`);
assert.equal(resp.status(), 200);
assert.match(resp.headers()["content-security-policy"], /frame-ancestors \*/);
measured.embed_lcp_ms = await lcp(embed);
measured.embed_segments = await playsPast2s(embed, "embed");
// The waveform peaks (issue 21) are drawn as the seek bar.
await embed.locator("[data-testid=waveform] polygon").first().waitFor({ state: "attached" });
await shoot(embed, "embed");

// --- Overview: LCP, the plots have data after this traffic ------------------------------
await page.goto(base + "/");
await page.getByRole("heading", { name: "Overview" }).waitFor();
measured.overview_lcp_ms = await lcp(page);
const plots = page.locator("[data-testid=plots]");
assert.ok(Number(await plots.getAttribute("data-points")) >= 1, "overview has samples");
assert.equal(await page.locator(".plot canvas").count(), 7, "seven plots drawn");
const stats = await page.evaluate(() => fetch("/api/v1/stats?window=24h").then((r) => r.json()));
const last = stats.samples[stats.samples.length - 1];
assert.ok(last.requests[1] > 0 && last.media_bytes > 0 && last.stream_urls > 0, `plots have data: ${JSON.stringify(last)}`);
await page.getByRole("button", { name: "Test signing" }).click();
await page.getByTestId("signing-result").waitFor();
assert.match(await page.getByTestId("signing-result").innerText(), /^206 in \d+ ms via local/);
await shoot(page, "overview");

// --- Edit inline ---------------------------------------------------------------------------
await page.getByRole("link", { name: "Library" }).click();
await page.locator(`[data-testid=track-row][data-id="${id}"]`).getByRole("button", { name: /^Edit/ }).click();
await page.getByRole("textbox", { name: "Title" }).fill("Renamed in the browser");
await page.getByRole("button", { name: "Save" }).click();
await page.getByRole("link", { name: "Renamed in the browser" }).waitFor();

// --- Take down: the open embed's player gets 451s and says so; the embed URL is 404 -------
const mediaBefore = media.length;
await page.getByRole("link", { name: "Renamed in the browser" }).click();
await page.getByRole("button", { name: "Take down" }).click();
await page.getByText("This track is unavailable (taken down).").waitFor();
// Beyond what was buffered: the player must fetch a new segment.
await embed.evaluate(() => {
  const a = document.querySelector("audio");
  a.currentTime = Math.max(0, a.duration - 3);
});
await embed.getByText("This track is unavailable.").waitFor({ timeout: 20000 });
assert.ok(media.slice(mediaBefore).some((m) => m.status === 451), "a segment request got 451");
const gone = await ctx.request.get(`${base}/embed/${id}`);
assert.equal(gone.status(), 404);
await third.close();
// A 451 in the console is the expected network error of the taken-down segment.
for (let i = problems.length - 1; i >= 0; i--) if (/451/.test(problems[i])) problems.splice(i, 1);

// --- Delete (with confirmation) --------------------------------------------------------
await page.getByRole("button", { name: "Delete" }).click();
await page.getByRole("heading", { name: "Library" }).waitFor();
await page.locator("[data-testid=track-row]").first().waitFor();
assert.equal(await page.locator("[data-testid=track-row]").count(), 1, "one track left");
assert.equal(await page.locator(`[data-testid=track-row][data-id="${id}"]`).count(), 0, "the deleted one is gone");

// --- Jobs, users and tokens, settings ------------------------------------------------------
await page.getByRole("link", { name: "Jobs" }).click();
await page.getByRole("cell", { name: /package_hls/ }).first().waitFor();
await shoot(page, "jobs");
await page.getByRole("link", { name: "Users & tokens" }).click();
await page.getByLabel("Username").fill("editor1");
await page.locator("form").filter({ hasText: "Create user" }).getByLabel("Password").fill("another long password");
await page.getByRole("button", { name: "Create user" }).click();
await page.locator("[data-testid=user-row]", { hasText: "editor1" }).waitFor();
await page.getByLabel("Role of editor1").selectOption("admin");
await page.getByText("editor1 is now admin.").waitFor();
await page.locator("[data-testid=user-row]", { hasText: "editor1" }).getByRole("button", { name: "Disable" }).click();
await page.getByText("editor1 disabled.").waitFor();
await page.getByLabel("Name", { exact: true }).fill("ci");
await page.getByRole("button", { name: "Create token" }).click();
const token = await page.getByTestId("new-token").locator("code").innerText();
assert.match(token, /^vz_/);
const who = await page.evaluate((t) => fetch("/api/v1/me", { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status), token);
assert.equal(who, 200, "the new token works");
await page.locator("[data-testid=token-row]", { hasText: "ci" }).getByRole("button", { name: "Revoke" }).click();
await page.locator("[data-testid=token-row]", { hasText: "revoked" }).waitFor();
await shoot(page, "users");
await page.getByRole("link", { name: "Settings" }).click();
const cfg = await page.getByTestId("config").innerText();
assert.match(cfg, /\[server\]/);
assert.doesNotMatch(cfg, /key = "[^"*]/, "no unmasked secret keys");
await shoot(page, "settings");

// --- Web vitals: leaving the page flushes a beacon; the counter moves ------------------
const beacons = async () => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(/^veza_rum_beacons_received_total (\d+)/m);
  return m ? Number(m[1]) : 0;
};
const before = await beacons();
const vitalsPage = await open(ctx);
await vitalsPage.goto(base + "/library");
await vitalsPage.getByRole("heading", { name: "Library" }).waitFor();
await vitalsPage.goto("about:blank");
await vitalsPage.close();
let after = before;
for (let i = 0; i < 50 && after <= before; i++) {
  await new Promise((r) => setTimeout(r, 100));
  after = await beacons();
}
assert.ok(after > before, `beacons received ${before} -> ${after}`);
measured.beacons = after - before;
const routes = (await page.evaluate(() => fetch("/api/v1/stats?window=1h").then((r) => r.json()))).rum_routes;
assert.ok(routes.some((r) => r.lcp_p75 > 0) && routes.some((r) => r.route === "library"), `p75 per route: ${JSON.stringify(routes)}`);

await browser.close();
blogServer.close();
assert.deepEqual(problems, [], "no console errors, page errors or CSP violations");
measured.total_ms = Date.now() - t0;
console.log(JSON.stringify(measured));
