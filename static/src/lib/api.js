// The JSON API: session cookie plus the CSRF header on writes; errors carry the envelope's text.
let csrf = null;

/** Remembers the session's CSRF token (from login or GET /api/v1/me). */
export function setCsrf(token) {
  csrf = token;
}

/** A non-2xx answer, with the envelope's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(resp) {
  const body = await resp.json().catch(() => null);
  const e = body && body.error;
  return new ApiError(resp.status, e ? e.code : `http_${resp.status}`, e ? e.message : `${resp.status} ${resp.statusText}`);
}

/** Calls the API; `json` is sent as the body. Resolves to the parsed body (null for 204). */
export async function api(path, { method = "GET", json, signal } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  }
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  const resp = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  if (!resp.ok) throw await failure(resp);
  return resp.status === 204 ? null : resp.json();
}

/** Uploads one file with progress (fetch has no upload progress): resolves {status, body}. */
export function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/tracks");
    if (csrf) xhr.setRequestHeader("x-csrf-token", csrf);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => reject(new Error("network error"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/** Human sizes: 1.2 MB. */
export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

/** 3:07 */
export function clock(secs) {
  if (!Number.isFinite(secs)) return "0:00";
  const s = Math.floor(secs);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** A Unix time as local date and time. */
export function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "–";
}
