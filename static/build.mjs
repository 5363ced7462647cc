// Bundles the dashboard and the embed player with esbuild into one folder that rust-embed
// includes: content-hashed assets plus the HTML pages that name them. Run by build.rs.
// Usage: node static/build.mjs <out-dir>
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, "..", "target", "dashboard"));
const assets = path.join(out, "assets");
await rm(out, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

const result = await build({
  entryPoints: { app: path.join(here, "src/app.jsx"), embed: path.join(here, "src/embed.jsx") },
  outdir: assets,
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  jsxImportSource: "preact",
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  assetNames: "[name]-[hash]",
  publicPath: "/assets/",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});

// Which hashed files each entry needs: its JS and CSS.
const entries = {};
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (!meta.entryPoint) continue;
  const name = path.basename(file).split("-")[0];
  entries[name] = { js: "/assets/" + path.basename(file), css: meta.cssBundle ? "/assets/" + path.basename(meta.cssBundle) : null };
}

const template = await readFile(path.join(here, "page.html"), "utf8");
const page = (entry, title) => {
  const e = entries[entry];
  const css = e.css ? `<link rel="stylesheet" href="${e.css}">` : "";
  return template.replace("{{title}}", title).replace("{{css}}", css).replace("{{js}}", `<script type="module" src="${e.js}"></script>`);
};
await writeFile(path.join(out, "index.html"), page("app", "Veza"));
await writeFile(path.join(out, "embed.html"), page("embed", "Veza player"));
await writeFile(path.join(out, "manifest.json"), JSON.stringify(entries, null, 1));
