// A uPlot chart sized to its container; redrawn when the data changes.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const dark = matchMedia("(prefers-color-scheme: dark)");

export function Plot({ title, series, data, yFormat, bands, xRange }) {
  const box = useRef(null);
  const plot = useRef(null);
  // Axis colours come from the theme: rebuild when it flips.
  const [scheme, setScheme] = useState(dark.matches);
  useEffect(() => {
    const flip = () => setScheme(dark.matches);
    dark.addEventListener("change", flip);
    return () => dark.removeEventListener("change", flip);
  }, []);
  useEffect(() => {
    const el = box.current;
    const width = () => Math.max(240, el.clientWidth);
    const css = getComputedStyle(document.documentElement);
    const ink = css.getPropertyValue("--muted").trim() || "#888";
    const grid = css.getPropertyValue("--line").trim() || "#ddd";
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const opts = {
      width: width(),
      height: 180,
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: s.fill, width: 2, points: { show: data[0].length < 60, size: 5 }, spanGaps: false }))],
      axes: [axis, { ...axis, size: 56, values: yFormat ? (_u, ticks) => ticks.map(yFormat) : undefined }],
      // The whole window, however few samples there are yet.
      scales: { x: { time: true, range: xRange ? () => xRange.current : undefined } },
      legend: { live: false },
      hooks: bands ? { drawClear: [(u) => drawBands(u, bands)] } : {},
    };
    plot.current = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.current.setSize({ width: width(), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current.destroy();
    };
  }, [scheme]);
  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);
  return (
    <figure class="plot">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={title} />
    </figure>
  );
}

// Good / needs improvement / poor zones behind the RUM series.
function drawBands(u, bands) {
  const { ctx } = u;
  const top = u.bbox.top;
  const bottom = u.bbox.top + u.bbox.height;
  const y = (v) => Math.min(bottom, Math.max(top, u.valToPos(v, "y", true)));
  const zones = [
    [0, bands[0], "rgba(22,163,74,0.10)"],
    [bands[0], bands[1], "rgba(234,179,8,0.12)"],
    [bands[1], Infinity, "rgba(220,38,38,0.10)"],
  ];
  ctx.save();
  for (const [lo, hi, color] of zones) {
    const y1 = y(lo);
    const y2 = hi === Infinity ? top : y(hi);
    ctx.fillStyle = color;
    ctx.fillRect(u.bbox.left, y2, u.bbox.width, y1 - y2);
  }
  ctx.restore();
}
