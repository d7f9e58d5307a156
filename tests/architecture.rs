//! The import graph of src/, checked (docs/architecture.md, "Layers"): each module
//! may use only the modules below it, and no two modules, nor two files of one module,
//! use each other. The rule is kept by this test, not by memory.
//!
//! ```text
//! main → app, config, telemetry, import_file → grpc, http, workers → service → store → domain → error
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use (besides itself). A module missing here may use
/// anything that does not make a circle; the layers that matter are all listed.
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("domain", &["error"]),
    ("store", &["domain", "error"]),
    ("service", &["store", "domain", "error"]),
    ("grpc", &["service", "domain", "error", "telemetry"]),
    ("http", &["grpc", "service", "domain", "error", "telemetry"]),
    ("workers", &["service", "domain", "error"]),
];

/// One source file, and the modules of this crate it names.
struct File {
    /// e.g. `store/engagement.rs`.
    rel: String,
    /// The top-level module (`store`), or the file's stem at the top (`app`).
    module: String,
    /// The file's module within its top-level module (`engagement`), if any.
    sub: Option<String>,
    /// Top-level modules named by `crate::…` paths.
    uses: BTreeSet<String>,
    /// Sibling files named by `super::…` or `crate::<module>::…`.
    siblings: BTreeSet<String>,
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its unit tests (a `#[cfg(test)] mod`
/// at the end may use anything, like an integration test).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The first segment after each `prefix` (`crate::` → `store` in `crate::store::Db`),
/// also inside `use prefix{a, b::c}` groups.
fn heads(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group, up to its closing brace.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

fn files() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    sources(&src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
            let module = parts[0].to_owned();
            let sub = (parts.len() == 2 && parts[1] != "mod").then(|| parts[1].to_owned());
            let code = code(&std::fs::read_to_string(&path).unwrap());
            let uses = heads(&code, "crate::");
            let mut siblings = heads(&code, "super::");
            siblings.extend(heads(&code, &format!("crate::{module}::")));
            let dir = src.join(&module);
            siblings.retain(|s| Some(s) != sub.as_ref() && dir.join(format!("{s}.rs")).exists());
            File { rel, module, sub, uses, siblings }
        })
        .collect()
}

/// A circle in `edges`, if there is one, as the path that closes it.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let mut wrong = Vec::new();
    for f in files() {
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == f.module) else { continue };
        for used in &f.uses {
            if *used != f.module && !allowed.contains(&used.as_str()) {
                wrong.push(format!("{} uses crate::{used}", f.rel));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers (docs/architecture.md):\n{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_use_each_other() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files() {
        let e = edges.entry(f.module.clone()).or_default();
        e.extend(f.uses.iter().filter(|u| **u != f.module).cloned());
    }
    assert_eq!(circle(&edges), None, "top-level modules in a circle");
}

#[test]
fn no_two_files_of_a_module_use_each_other() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files() {
        if let Some(sub) = &f.sub {
            let e = edges.entry(format!("{}/{sub}", f.module)).or_default();
            e.extend(f.siblings.iter().map(|s| format!("{}/{s}", f.module)));
        }
    }
    assert_eq!(circle(&edges), None, "files of one module in a circle");
}

#[test]
fn the_checker_sees_imports_and_circles() {
    // The scanner itself, on the forms the code uses.
    let code = code("use crate::{domain::X, store::{self, Db}};\nlet x = crate::grpc::pb::Y; // crate::app\n");
    assert_eq!(heads(&code, "crate::"), ["domain", "grpc", "store"].map(String::from).into());
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    assert_eq!(circle(&edges), None);
    edges.entry("b".into()).or_default().insert("a".into());
    assert_eq!(circle(&edges), Some(vec!["a".into(), "b".into(), "a".into()]));
}
