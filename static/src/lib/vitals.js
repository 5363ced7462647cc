// Web vitals to the server's beacon: one sampling decision per page load (rum.sample_rate,
// served in a meta tag), batched, flushed when the page is hidden.
import { onCLS, onFCP, onINP, onLCP, onTTFB } from "web-vitals";

const URL = "/api/v1/observability/web-vitals";

function device() {
  const ua = navigator.userAgent;
  if (/iPad|Tablet/i.test(ua) || (/Android/i.test(ua) && !/Mobile/i.test(ua))) return "tablet";
  if (/Mobi|iPhone|Android/i.test(ua) || innerWidth < 600) return "mobile";
  return "desktop";
}

function send(items) {
  const body = JSON.stringify(items);
  // sendBeacon's string body goes as text/plain, which the endpoint accepts.
  if (navigator.sendBeacon && navigator.sendBeacon(URL, body)) return;
  fetch(URL, { method: "POST", body, keepalive: true, headers: { "content-type": "application/json" } }).catch(() => {});
}

/** Starts reporting for this page load, if sampled. */
export function startVitals(route) {
  const meta = document.querySelector('meta[name="veza-rum-sample-rate"]');
  const rate = meta ? Number(meta.content) : 1;
  if (!(Math.random() < rate)) return;
  const queue = [];
  const dev = device();
  const add = (m) => queue.push({ name: m.name, value: m.value, rating: m.rating, id: m.id, route, device: dev, navigation_type: m.navigationType });
  onLCP(add);
  onINP(add);
  onCLS(add);
  onFCP(add);
  onTTFB(add);
  const flush = () => {
    while (queue.length) send(queue.splice(0, 20));
  };
  addEventListener("visibilitychange", () => document.visibilityState === "hidden" && flush());
  addEventListener("pagehide", flush);
}
