//! One direction of dependencies: every `crate::` path in `src/` must follow the allowed map in
//! docs/ARCHITECTURE.md ("Dependencies"), and that map must have no cycle. Adding an import
//! that the map does not allow fails here; so does a module the map does not list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The allowed map: `| \`module\` | \`dep\`, \`dep\` |` rows under `## Dependencies`.
fn allowed_map(doc: &str) -> Graph {
    let section = doc
        .split("\n## Dependencies")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a `## Dependencies` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut map = Graph::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let module = cells[1].trim_matches('`').to_owned();
        let deps = cells[2]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_owned())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        assert!(
            map.insert(module.clone(), deps).is_none(),
            "{module} is listed twice"
        );
    }
    map
}

/// The top-level modules `crate::` paths in `text` name.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first identifier of each top-level item.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// Actual edges between top-level modules of `src/` (`main.rs` and `lib.rs` excluded).
fn actual_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for entry in walkdir(src) {
        let rel = entry.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_refs(&text).into_iter().filter(|d| *d != module));
    }
    graph
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// A cycle in `g`, if any (depth-first search).
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn imports_follow_the_allowed_map_and_it_has_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let allowed = allowed_map(&doc);
    assert!(
        allowed.len() > 10,
        "the map is too small to be real: {allowed:?}"
    );
    if let Some(c) = find_cycle(&allowed) {
        panic!("the allowed map has a cycle: {}", c.join(" → "));
    }
    let actual = actual_graph(&root.join("src"));
    let mut wrong = Vec::new();
    for (module, deps) in &actual {
        let Some(ok) = allowed.get(module) else {
            wrong.push(format!("{module} is not in the map"));
            continue;
        };
        for d in deps.iter().filter(|d| allowed.contains_key(*d)) {
            if !ok.contains(d) {
                wrong.push(format!("{module} → {d}"));
            }
        }
        // A name after `crate::` that is no module (a typo in the map's reading) is a bug here.
        for d in deps.iter().filter(|d| !allowed.contains_key(*d)) {
            wrong.push(format!("{module} → {d} (unknown module)"));
        }
    }
    for module in allowed.keys() {
        if !actual.contains_key(module) {
            wrong.push(format!("{module} is in the map but not in src/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports the map does not allow:\n{}",
        wrong.join("\n")
    );
    // The check itself must see edges, or it would pass on anything.
    assert!(actual["http"].contains("tracks") && actual["tracks"].contains("library"));
}

#[test]
fn crate_paths_are_read_in_every_form() {
    let refs =
        crate_refs("use crate::a::B;\nuse crate::{c, d::{e, f}, g::H};\nlet x = crate::h::now();");
    let names: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(names, ["a", "c", "d", "g", "h"]);
    let mut g = Graph::new();
    g.entry("x".into()).or_default().insert("y".into());
    g.entry("y".into()).or_default().insert("x".into());
    assert!(find_cycle(&g).is_some());
}
