// Plays a track through the same signed-URL flow as any client: hls.js over MSE first,
// native HLS where the browser has it, the original file as the fallback.
import { api, ApiError } from "./api.js";

/** Thrown when the track is taken down or gone. */
export class Unavailable extends Error {}

async function signed(id, format) {
  try {
    return await api(`/api/v1/tracks/${encodeURIComponent(id)}/stream${format ? `?format=${format}` : ""}`);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 451 || e.status === 404 || e.status === 410)) throw new Unavailable(e.message);
    throw e;
  }
}

/** Attaches the track to `audio`; `onFatal(unavailable, message)` reports a later failure. Returns a detach function. */
export async function attach(audio, id, onFatal) {
  const s = await signed(id);
  const isHls = new URL(s.url, location.href).pathname.endsWith(".m3u8");
  if (isHls && window.MediaSource) {
    const { default: Hls } = await import("hls.js/light");
    if (Hls.isSupported()) {
      // No worker: the strict CSP allows no blob: scripts. A short buffer: audio needs
      // little, and a track taken down mid-play stops soon.
      const hls = new Hls({ enableWorker: false, maxBufferLength: 10, maxMaxBufferLength: 20 });
      hls.on(Hls.Events.ERROR, (_e, d) => {
        const code = d.response && d.response.code;
        // 451: taken down while playing; hls.js does not retry a 4xx.
        if (!d.fatal && code !== 451) return;
        onFatal(code === 451 || code === 404, `Playback failed: ${d.details}`);
        hls.destroy();
      });
      hls.loadSource(s.url);
      hls.attachMedia(audio);
      return () => hls.destroy();
    }
  }
  if (isHls && audio.canPlayType("application/vnd.apple.mpegurl")) {
    audio.src = s.url;
  } else if (isHls) {
    audio.src = (await signed(id, "original")).url;
  } else {
    audio.src = s.url;
  }
  const onError = () => onFatal(false, "Playback failed.");
  audio.addEventListener("error", onError);
  return () => {
    audio.removeEventListener("error", onError);
    audio.removeAttribute("src");
    audio.load();
  };
}
