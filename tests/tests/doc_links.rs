//! Every relative link in the documentation leads somewhere: `README.md`, `BENCHMARKS.md` and
//! every Markdown file under `docs/`. A link's file (or folder) must exist inside the
//! repository, and a `#anchor` into a Markdown file must name one of its headings, slugged as
//! GitHub slugs them. Links to `http(s)://` and `mailto:` are not followed; links inside code
//! blocks and code spans are not links. Needs no emulator.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The repository root: the parent of this crate's folder (`tests/`).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The documentation checked: the top-level pages and everything under `docs/`.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    files.retain(|f| f.is_file());
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Each line of a Markdown text, or `None` where it opens, closes or sits in a fenced code
/// block (so that callers keep true line numbers).
fn outside_fences(text: &str) -> Vec<Option<&str>> {
    let mut fence: Option<(char, usize)> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 => {
                fence = Some((m, run));
                out.push(None);
            }
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run * c.len_utf8()..].trim().is_empty() => {
                fence = None;
                out.push(None);
            }
            (Some(_), _) => out.push(None),
            (None, _) => out.push(Some(line)),
        }
    }
    out
}

/// The lines of a Markdown text that are prose: fenced code blocks and code spans blanked,
/// so that line numbers stay true.
fn prose_lines(text: &str) -> Vec<String> {
    outside_fences(text)
        .into_iter()
        .map(|l| l.map(strip_code_spans).unwrap_or_default())
        .collect()
}

/// The line with its code spans (a run of backticks up to the next run of the same length)
/// blanked.
fn strip_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let open = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + open;
        let mut close = None;
        while j < chars.len() {
            let run = chars[j..].iter().take_while(|c| **c == '`').count();
            if run == open {
                close = Some(j + run);
                break;
            }
            j += run.max(1);
        }
        match close {
            Some(end) => {
                out.push(' ');
                i = end;
            }
            None => {
                out.extend(&chars[i..i + open]);
                i += open;
            }
        }
    }
    out
}

/// The targets of the inline links and images (`[text](target)`), of the reference
/// definitions (`[label]: target`) and of HTML `src` and `href` attributes on one line of prose.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = line;
        while let Some(at) = rest.find(attr) {
            let value = &rest[at + attr.len()..];
            let end = value.find('"').unwrap_or(value.len());
            targets.push(value[..end].to_owned());
            rest = &value[end..];
        }
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(end) = trimmed.find("]:")
    {
        let rest = trimmed[end + 2..].trim();
        if let Some(target) = rest.split_whitespace().next() {
            targets.push(target.trim_start_matches('<').trim_end_matches('>').to_owned());
        }
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let inner = after[..end].trim();
        let target = match inner.strip_prefix('<') {
            Some(angled) => angled.split('>').next().unwrap_or_default(),
            None => inner.split_whitespace().next().unwrap_or_default(),
        };
        targets.push(target.to_owned());
        rest = &after[end.min(after.len())..];
    }
    targets
}

/// GitHub's anchor for a heading: the text without Markdown (links keep their text), in
/// lower case, with everything but letters, digits, spaces, `-` and `_` removed and spaces
/// made `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](").zip(after.find(')')) {
            Some((mid, close)) if mid < close => {
                text.push_str(&after[..mid]);
                let tail = &after[mid + 2..];
                rest = tail.find(')').map_or("", |c| &tail[c + 1..]);
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
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown file offers: its headings' slugs (a repeated slug gets `-1`, `-2`,
/// …) and the `id` and `name` attributes of its HTML.
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    for line in outside_fences(text).into_iter().flatten() {
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            let base = slug(line[level..].trim().trim_end_matches('#'));
            let mut candidate = base.clone();
            let mut n = 0;
            while found.contains(&candidate) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
            found.insert(candidate);
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(attr) {
                let value = &rest[at + attr.len()..];
                let end = value.find('"').unwrap_or(value.len());
                found.insert(value[..end].to_owned());
                rest = &value[end..];
            }
        }
    }
    found
}

/// `%20` and the like decoded, as a browser decodes a link's path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/./b/../c` as `a/c`, without asking the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Why a link from `file` to `target` does not resolve, or `None` when it does.
fn check(root: &Path, file: &Path, target: &str) -> Option<String> {
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let dest = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        normalise(&root.join(percent_decode(from_root)))
    } else {
        normalise(&file.parent().unwrap_or(root).join(percent_decode(path)))
    };
    if !dest.starts_with(root) {
        return Some("leads outside the repository".to_owned());
    }
    if !dest.exists() {
        return Some(format!(
            "{} does not exist",
            dest.strip_prefix(root).unwrap_or(&dest).display()
        ));
    }
    let anchor = anchor.filter(|a| !a.is_empty())?;
    if dest.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let text = match fs::read_to_string(&dest) {
        Ok(text) => text,
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    let anchor = percent_decode(anchor);
    (!anchors(&text).contains(&anchor)).then(|| {
        let name = dest.strip_prefix(root).unwrap_or(&dest).display().to_string();
        format!("{name} has no heading #{anchor}")
    })
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = root();
    let files = documents(&root);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "no README.md under {}",
        root.display()
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                broken.push(format!("{}: cannot be read: {e}", file.display()));
                continue;
            }
        };
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        for (n, line) in prose_lines(&text).iter().enumerate() {
            for target in link_targets(line) {
                if target.is_empty() || is_external(&target) {
                    continue;
                }
                checked += 1;
                if let Some(why) = check(&root, file, &target) {
                    broken.push(format!("{name}:{}: ({target}): {why}", n + 1));
                }
            }
        }
    }
    assert!(checked > 0, "no relative link found in {} files", files.len());
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(slug("Quick start"), "quick-start");
    assert_eq!(slug("Without Docker: `cargo lambda`"), "without-docker-cargo-lambda");
    assert_eq!(slug("Admin API and `billingctl`"), "admin-api-and-billingctl");
    assert_eq!(
        slug("Where we departed from DESIGN.md, and why"),
        "where-we-departed-from-designmd-and-why"
    );
    assert_eq!(
        slug("Settlement hot path and data generator, 1,000,000 customers"),
        "settlement-hot-path-and-data-generator-1000000-customers"
    );
    assert_eq!(
        slug("One settlement shard: compute, I/O and requests"),
        "one-settlement-shard-compute-io-and-requests"
    );
    assert_eq!(slug("See [the month](month.md) now"), "see-the-month-now");
    assert_eq!(slug("The `Due` index"), "the-due-index");
    let repeated = anchors("# A\n## A\n```\n# A\n```\n### A\n");
    assert_eq!(
        repeated,
        HashSet::from(["a".to_owned(), "a-1".to_owned(), "a-2".to_owned()])
    );
}

#[test]
fn links_in_code_are_not_links() {
    let lines = prose_lines("a [x](one.md) `[y](two.md)`\n```\n[z](three.md)\n```\n[r]: four.md \"title\"\n");
    let targets: Vec<String> = lines.iter().flat_map(|l| link_targets(l)).collect();
    assert_eq!(targets, ["one.md", "four.md"]);
    assert_eq!(
        link_targets("![img](pic.png) and [a (b)](c_(d).md)"),
        ["pic.png", "c_(d).md"]
    );
    assert_eq!(
        link_targets(r#"<img src="docs/a.png" alt="x"> <a href="b.md#c">b</a>"#),
        ["docs/a.png", "b.md#c"]
    );
}
