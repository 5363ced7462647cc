// The player UI shared by the track page and /embed/{id}: play/pause, seek, time, volume;
// native controls that work with the keyboard.
import { useEffect, useRef, useState } from "preact/hooks";
import { attach, Unavailable } from "./player.js";
import { clock } from "./api.js";

export function Player({ track, autoplay = false }) {
  const audio = useRef(null);
  const [state, setState] = useState({ t: 0, d: (track.duration_ms || 0) / 1000, playing: false, volume: 1 });
  const [error, setError] = useState(null);

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
          <input type="range" class="seek" min="0" max={state.d || 0} step="0.1" value={state.t} aria-label="Seek"
            onInput={(e) => (audio.current.currentTime = Number(e.currentTarget.value))} />
          <span class="time">{clock(state.d)}</span>
          <input type="range" class="volume" min="0" max="1" step="0.05" value={state.volume} aria-label="Volume"
            onInput={(e) => (audio.current.volume = Number(e.currentTarget.value))} />
        </div>
      )}
    </div>
  );
}
