// /embed/{id}: the public player page, iframe-friendly.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api } from "./lib/api.js";
import { Player } from "./lib/Player.jsx";
import { startVitals } from "./lib/vitals.js";
import "./embed.css";

startVitals("embed");
const id = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");

function Embed() {
  const [track, setTrack] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api(`/api/v1/tracks/${encodeURIComponent(id)}`).then(setTrack, (e) => setError(e.status === 451 || e.status === 404 ? "This track is unavailable." : e.message));
  }, []);
  if (error) return <main class="embed"><p class="player-error" role="alert">{error}</p></main>;
  if (!track) return <main class="embed" aria-busy="true"><p class="muted">Loading…</p></main>;
  return (
    <main class="embed">
      {track.has_cover ? <img class="cover" src={`/api/v1/tracks/${track.id}/cover`} alt="" width="96" height="96" /> : <div class="cover placeholder" aria-hidden="true">♪</div>}
      <div class="embed-body">
        <h1 class="title">{track.title}</h1>
        <p class="artist">{track.artist || "Unknown artist"}</p>
        <Player track={track} />
      </div>
    </main>
  );
}

render(<Embed />, document.getElementById("root"));
