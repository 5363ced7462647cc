// The player UI shared by the track page and /embed/{id}: play/pause, seek, time, volume;
// native controls that work with the keyboard. When the track has waveform peaks
// (audiowaveform JSON v2 at `peaks_url`), they are drawn behind the seek bar.
import { useEffect, useRef, useState } from "preact/hooks";
import { attach, Unavailable } from "./player.js";
import { clock } from "./api.js";

export function Player({ track, autoplay = false }) {
  const audio = useRef(null);
  const [state, setState] = useState({ t: 0, d: (track.duration_ms || 0) / 1000, playing: false, volume: 1 });
  const [error, setError] = useState(null);
  const [peaks, setPeaks] = useState(null);

  useEffect(() => {
    if (!track.peaks_url) return;
    fetch(track.peaks_url).then((r) => (r.ok ? r.json() : null)).then(setPeaks, () => setPeaks(null));
  }, [track.peaks_url]);

  useEffect(() => {
    const el = audio.current;
    let detach = null;
    let gone = false;
    const fail = (unavailable, message) => setError(unavailable ? "This track is unavailable." : message);
    attach(el, track.id, fail)
      .then((d) => {
        if (gone) return d();
        detach = d;
        if (autoplay) el.play().catch(() => {});
      })
      .catch((e) => fail(e instanceof Unavailable, e.message));
    const sync = () => setState({ t: el.currentTime, d: Number.isFinite(el.duration) ? el.duration : (track.duration_ms || 0) / 1000, playing: !el.paused, volume: el.volume });
    const events = ["timeupdate", "play", "pause", "durationchange", "volumechange", "ended"];
    events.forEach((e) => el.addEventListener(e, sync));
    return () => {
      gone = true;
      events.forEach((e) => el.removeEventListener(e, sync));
      if (detach) detach();
    };
  }, [track.id]);

  const toggle = () => (audio.current.paused ? audio.current.play().catch((e) => setError(e.message)) : audio.current.pause());
  return (
    <div class="player" data-testid="player">
      <audio ref={audio} preload="metadata" />
      {error ? (
        <p class="player-error" role="alert">{error}</p>
      ) : (
        <div class="player-controls">
          <button type="button" class="play" onClick={toggle} aria-label={state.playing ? "Pause" : "Play"}>
            <span aria-hidden="true">{state.playing ? "❚❚" : "▶"}</span>
          </button>
          <span class="time" aria-live="off">{clock(state.t)}</span>
          <span class="seek-wrap">
            {peaks && <Waveform peaks={peaks} at={state.d ? state.t / state.d : 0} />}
            <input type="range" class="seek" min="0" max={state.d || 0} step="0.1" value={state.t} aria-label="Seek"
              onInput={(e) => (audio.current.currentTime = Number(e.currentTarget.value))} />
          </span>
          <span class="time">{clock(state.d)}</span>
          <input type="range" class="volume" min="0" max="1" step="0.05" value={state.volume} aria-label="Volume"
            onInput={(e) => (audio.current.volume = Number(e.currentTarget.value))} />
        </div>
      )}
    </div>
  );
}

/** Min/max pairs as one filled outline (8-bit values, 0 in the middle); the played part darker. */
function Waveform({ peaks, at }) {
  const n = peaks.length;
  const d = peaks.data;
  if (!n || d.length < 2 * n) return null;
  const top = [];
  const bottom = [];
  for (let i = 0; i < n; i++) {
    top.push(`${i},${128 - d[2 * i + 1]}`);
    bottom.push(`${i},${128 - d[2 * i]}`);
  }
  const points = top.concat(bottom.reverse()).join(" ");
  return (
    <svg class="waveform" data-testid="waveform" viewBox={`0 0 ${n} 256`} preserveAspectRatio="none" aria-hidden="true">
      <clipPath id="played"><rect width={n * at} height="256" /></clipPath>
      <polygon points={points} class="wave" />
      <polygon points={points} class="wave played" clip-path="url(#played)" />
    </svg>
  );
}
