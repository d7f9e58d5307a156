//! The documentation stays whole: every relative link in README.md, docs/*.md and the
//! chart's READMEs leads to a file of the repository (and a `#anchor` to a heading of
//! that file, by GitHub's slug rules), no file of the repository points at a document
//! outside it, and the README stays short enough to read in one sitting.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const README_MAX_LINES: usize = 260;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's files: `git ls-files` (tracked and new, not ignored), or a walk of
/// the tree without `target/` and `.git/` when git is not there.
fn repo_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(root())
        .output();
    if let Ok(out) = out
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).lines().map(|l| root().join(l)).filter(|p| p.is_file()).collect();
    }
    let mut files = Vec::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules" | ".venv") {
                    stack.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The Markdown pages whose links are checked.
fn doc_pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for f in repo_files() {
        let rel = f.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        let in_docs = rel.starts_with("docs/") && rel.ends_with(".md") && !rel["docs/".len()..].contains('/');
        let helm_readme = rel.starts_with("helm/") && rel.ends_with("/README.md");
        if in_docs || helm_readme {
            pages.push(f);
        }
    }
    pages.sort();
    pages.dedup();
    pages
}

/// The lines of a Markdown text outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => out.push((i + 1, line)),
        }
    }
    out
}

/// A line without its inline code spans (`…`), where links are not links.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` and reference definitions
/// `[name]: target` of one line.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(end) = trimmed.find("]:")
    {
        if let Some(t) = trimmed[end + 2..].split_whitespace().next() {
            targets.push(t.trim_matches(['<', '>']).to_string());
        }
        return targets;
    }
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let mut depth = 0;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = j;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end.min(after.len())..];
    }
    targets
}

/// GitHub's anchor of a heading: markup dropped, lower case, every character but
/// letters, digits, `-`, `_` and spaces removed, spaces turned into `-`.
fn slug(heading: &str) -> String {
    // Links keep their text only.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(paren)) if close < paren => {
                text.push_str(&after[..close]);
                rest = &after[paren + 1..];
            }
            _ => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a Markdown file: its ATX headings, with `-1`, `-2`… for repeats.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let t = line.trim_start();
        let level = t.chars().take_while(|&c| c == '#').count();
        if level == 0 || level > 6 || !t[level..].starts_with(' ') {
            continue;
        }
        let base = slug(t[level..].trim().trim_end_matches('#'));
        let mut candidate = base.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in doc_pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.is_empty()
                    || target.contains("://")
                    || target.starts_with("mailto:")
                    || target.starts_with("tel:")
                {
                    continue;
                }
                checked += 1;
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
                let where_ = format!("{}:{n}: ({target})", rel(&page));
                let Ok(file) = file.canonicalize() else {
                    broken.push(format!("{where_}: no such file"));
                    continue;
                };
                if !file.starts_with(root().canonicalize().unwrap()) {
                    broken.push(format!("{where_}: outside the repository"));
                    continue;
                }
                if let Some(anchor) = anchor {
                    if file.is_dir() || file.extension().is_none_or(|e| e != "md") {
                        broken.push(format!("{where_}: an anchor into a file that is not Markdown"));
                        continue;
                    }
                    let target_text = std::fs::read_to_string(&file).unwrap();
                    if !anchors(&target_text).contains(anchor) {
                        broken.push(format!("{where_}: no heading #{anchor} in {}", rel(&file)));
                    }
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found: is the link parser broken?");
    assert!(broken.is_empty(), "{} broken link(s) in the docs:\n  {}", broken.len(), broken.join("\n  "));
}

#[test]
fn no_file_points_outside_the_repository() {
    // Spelled in pieces so this file does not match itself.
    let needles = [["DESIGN", " §"].concat(), ["DESIGN", ".md"].concat(), ["..", "/shared"].concat()];
    let mut hits = Vec::new();
    for file in repo_files() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for (i, line) in text.lines().enumerate() {
            for needle in &needles {
                if line.contains(needle.as_str()) {
                    hits.push(format!("{}:{}: mentions {needle:?}", rel(&file), i + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "files refer to documents outside the repository:\n  {}", hits.join("\n  "));
}

#[test]
fn the_readme_is_short() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move reference material to docs/"
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Quick start with curl"), "quick-start-with-curl");
    assert_eq!(slug("Surveys, eligibility and defaults"), "surveys-eligibility-and-defaults");
    assert_eq!(
        slug("`follow_up.opened`, `follow_up.updated` and `follow_up.overdue`"),
        "follow_upopened-follow_upupdated-and-follow_upoverdue"
    );
    assert_eq!(slug("Webhooks (`rapport.v1.WebhookService`)"), "webhooks-rapportv1webhookservice");
    assert_eq!(slug("See [the API](api.md) — twice"), "see-the-api--twice");
    let a = anchors("# A\n## B\n```\n# not a heading\n```\n## B\n");
    assert!(a.contains("a") && a.contains("b") && a.contains("b-1") && !a.contains("not-a-heading"));
    assert_eq!(link_targets(r#"see [a](x.md#y) and `[b](no.md)` and [c](z.md "title")"#), vec!["x.md#y", "z.md"]);
}
