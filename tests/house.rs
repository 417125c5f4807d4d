//! The import graph shows the architecture: every `crate::…`, `super::…`
//! and child-module path in `src/` points down a floor or within one
//! program, and no file reaches back to itself through others.
//!
//! Floors (README "Layout"): 1 `fsx/` and `exit.rs`, the primitives over
//! directories others can write; 2 `queue/`, what a queue is and which
//! ones are in service; 3 the programs `multi/`, `fix/`, `stat/`, which
//! never import each other; 4 the front ends in `bin/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module: its path below the crate root (`["fix", "check"]`), or a
/// front end (`["bin", "queue-fix"]`).
type Module = Vec<String>;

struct File {
    module: Module,
    /// `mod x;` declared in it: `x::…` then names a child.
    children: BTreeSet<String>,
    /// The code, comments removed, one `use` statement per line.
    code: Vec<String>,
    /// Modules brought in by name (`use crate::fsx::dir;`, then `dir::…`).
    aliases: BTreeMap<String, Module>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if parts.first().is_some_and(|p| p == "bin") {
        return vec!["bin".into(), last.trim_end_matches(".rs").into()];
    }
    match last.as_str() {
        "mod.rs" | "lib.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").into()),
    }
    parts
}

/// Lines of code without comments, a multi-line `use` joined into one.
/// Inside an inline module (`mod tests {`), `super::` is the file itself.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    // Brace depth, and the depths at which inline modules opened.
    let mut depth = 0usize;
    let mut inline: Vec<usize> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        let opens = line
            .strip_prefix("pub ")
            .unwrap_or(line)
            .starts_with("mod ");
        if opens && line.ends_with('{') {
            inline.push(depth);
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        while inline.last().is_some_and(|&d| depth <= d) {
            inline.pop();
        }
        let owned;
        let line = if !inline.is_empty() {
            owned = line.replace("super::", "self::");
            owned.as_str()
        } else {
            line
        };
        let line = match line.find(" //") {
            Some(i) => &line[..i],
            None => line,
        };
        if !pending.is_empty() || line.starts_with("use ") || line.starts_with("pub use ") {
            pending.push_str(line);
            pending.push(' ');
            if line.ends_with(';') {
                out.push(std::mem::take(&mut pending));
            }
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path `a::b::c` in `s`, a `::{x, y::z}` group expanded.
fn paths_in(s: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        if boundary && (chars[i].is_ascii_alphabetic() || chars[i] == '_') {
            let (paths, next) = path_at(&chars, i);
            out.extend(paths.into_iter().filter(|p| p.len() > 1));
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The path starting at `i` (with any group after it), and where it ends.
fn path_at(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        prefix.push(chars[start..i].iter().collect::<String>());
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
            match chars.get(i) {
                Some(&'{') => return group_at(chars, i + 1, prefix),
                Some(c) if is_ident(*c) => continue,
                _ => return (vec![prefix], i),
            }
        }
        return (vec![prefix], i);
    }
}

/// A `{…}` group after `prefix::`, starting after its `{`.
fn group_at(chars: &[char], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '}' => return (out, i + 1),
            c if is_ident(c) => {
                let (inner, next) = path_at(chars, i);
                for p in inner {
                    let mut full = prefix.clone();
                    full.extend(p.into_iter().filter(|s| s != "self"));
                    out.push(full);
                }
                i = next;
            }
            _ => i += 1,
        }
    }
    (out, i)
}

/// The module file a path from `file` names, if it names one of ours.
fn resolve(file: &File, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let at: Module = match path[0].as_str() {
        "crate" | "qmail_multi" => Vec::new(),
        "self" => file.module.clone(),
        "super" => {
            let mut m = file.module.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                m.pop();
                rest = &rest[1..];
            }
            return longest(m, rest, modules);
        }
        child if file.children.contains(child) && !file.module.starts_with(&["bin".into()]) => {
            let mut m = file.module.clone();
            m.push(child.into());
            return longest(m, &path[1..], modules);
        }
        alias if file.aliases.contains_key(alias) => {
            return longest(file.aliases[alias].clone(), &path[1..], modules);
        }
        _ => return None,
    };
    // `crate::diag!`: the macro is exported at the root, defined in multi/diag.rs.
    if at.is_empty() && path.get(1).is_some_and(|s| s == "diag") && path.len() == 2 {
        return Some(vec!["multi".into(), "diag".into()]);
    }
    longest(at, &path[1..], modules)
}

fn longest(mut at: Module, rest: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    for seg in rest {
        let mut next = at.clone();
        next.push(seg.clone());
        if !modules.contains(&next) {
            break;
        }
        at = next;
    }
    (!at.is_empty()).then_some(at)
}

fn floor(m: &Module) -> u8 {
    match m[0].as_str() {
        "fsx" | "exit" => 1,
        "queue" => 2,
        "multi" | "fix" | "stat" => 3,
        // src/cli holds only clap definitions, included by the binaries
        // and build.rs with #[path]; it imports nothing of ours.
        "bin" | "cli" => 4,
        other => panic!("src/{other}: on no floor; add it to README's Layout and to floor()"),
    }
}

fn read_sources() -> BTreeMap<Module, File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut files = BTreeMap::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let module = module_of(&src, &path);
        let children = text
            .lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
                let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
                Some(name.to_owned())
            })
            .collect();
        let file = File {
            module: module.clone(),
            children,
            code: code_lines(&text),
            aliases: BTreeMap::new(),
        };
        files.insert(module, file);
    }
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    for file in files.values_mut() {
        for line in file.code.iter().filter(|l| l.contains("use ")) {
            for path in paths_in(line) {
                match resolve(file, &path, &modules) {
                    Some(m) if m.last() == path.last() => {
                        file.aliases.insert(m.last().unwrap().clone(), m);
                    }
                    _ => {}
                }
            }
        }
    }
    files
}

/// Every arrow between two files: (from, to, the line that makes it).
fn arrows(files: &BTreeMap<Module, File>) -> Vec<(Module, Module, String)> {
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut out = Vec::new();
    // The crate root only declares the modules (and re-exports one path).
    for file in files.values().filter(|f| !f.module.is_empty()) {
        for line in &file.code {
            for path in paths_in(line) {
                match resolve(file, &path, &modules) {
                    Some(to) if to != file.module => {
                        out.push((file.module.clone(), to, line.clone()))
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn name(m: &Module) -> String {
    format!("src/{}", m.join("/"))
}

/// Arrows that run up a floor, or across between two programs.
fn wrong_way(arrows: &[(Module, Module, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (from, to, line) in arrows {
        if to.is_empty() || from.is_empty() {
            continue;
        }
        let (f, t) = (floor(from), floor(to));
        let across = f == 3 && t == 3 && from[0] != to[0];
        if t > f || across {
            bad.push(format!("{} -> {}: {line}", name(from), name(to)));
        }
    }
    bad
}

/// The circles of the graph (strongly connected parts of more than one
/// file), by Tarjan's algorithm.
fn circles(arrows: &[(Module, Module, String)]) -> Vec<Vec<Module>> {
    let mut next: BTreeMap<&Module, BTreeSet<&Module>> = BTreeMap::new();
    for (from, to, _) in arrows {
        next.entry(from).or_default().insert(to);
        next.entry(to).or_default();
    }
    struct Walk<'a> {
        next: &'a BTreeMap<&'a Module, BTreeSet<&'a Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in &self.next[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut part = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    part.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if part.len() > 1 {
                    part.sort();
                    self.found.push(part);
                }
            }
        }
    }
    let mut walk = Walk {
        next: &next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in next.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn every_arrow_points_down_and_none_comes_back() {
    let files = read_sources();
    let arrows = arrows(&files);
    // The test must see the graph, or it proves nothing.
    assert!(
        arrows
            .iter()
            .any(|(f, t, _)| f[0] == "fix" && t[0] == "queue"),
        "no arrow fix -> queue found: the parser is broken"
    );
    assert!(
        arrows
            .iter()
            .any(|(f, t, _)| f[0] == "queue" && t[0] == "fsx"),
        "no arrow queue -> fsx found: the parser is broken"
    );
    if std::env::var_os("HOUSE_ARROWS").is_some() {
        let unique: BTreeSet<(String, String)> =
            arrows.iter().map(|(f, t, _)| (name(f), name(t))).collect();
        for (f, t) in unique {
            eprintln!("{f} -> {t}");
        }
    }
    let bad = wrong_way(&arrows);
    assert!(
        bad.is_empty(),
        "{} arrows run up a floor or across programs:\n{}",
        bad.len(),
        bad.join("\n")
    );
    let found = circles(&arrows);
    let shown: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(name).collect::<Vec<_>>().join(" <-> "))
        .collect();
    assert!(
        found.is_empty(),
        "{} import circles:\n{}",
        found.len(),
        shown.join("\n")
    );
    let mut per_floor = BTreeMap::new();
    for m in files.keys().filter(|m| !m.is_empty()) {
        *per_floor.entry(floor(m)).or_insert(0) += 1;
    }
    eprintln!(
        "files per floor {per_floor:?}, {} arrows, 0 up, 0 circles",
        arrows.len()
    );
}

#[test]
fn the_floor_imports_nothing_of_ours() {
    let files = read_sources();
    for (from, to, line) in arrows(&files) {
        if floor(&from) == 1 {
            assert_eq!(floor(&to), 1, "{} -> {}: {line}", name(&from), name(&to));
        }
    }
}

#[test]
fn every_file_says_its_one_job_first() {
    for (m, _) in read_sources() {
        let path = if m.is_empty() {
            "src/lib.rs".to_owned()
        } else if m[0] == "bin" {
            format!("src/bin/{}.rs", m[1])
        } else {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(name(&m));
            if dir.is_dir() {
                format!("{}/mod.rs", name(&m))
            } else {
                format!("{}.rs", name(&m))
            }
        };
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
        assert!(
            text.starts_with("//!"),
            "{path}: does not open with a //! line"
        );
    }
}

#[test]
fn the_parser_sees_groups_supers_and_children() {
    let p = paths_in("use crate::queue::{found, layout::{Kind, MESS}, self};");
    assert!(p.contains(&vec!["crate".into(), "queue".into(), "found".into()]));
    assert!(p.contains(&vec![
        "crate".into(),
        "queue".into(),
        "layout".into(),
        "Kind".into()
    ]));
    let p = paths_in("let x = super::plan::want_of(a, crate::fsx::dir::stat_at(b));");
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(paths_in("a::b").contains(&vec!["a".into(), "b".into()]));
}

/// Lines of each function outside test modules: `(file, name, lines)`.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let tests_at = lines
        .iter()
        .position(|l| l.trim_start() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    let mut out = Vec::new();
    for (i, line) in lines[..tests_at].iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let rest = line.trim_start();
        let rest = rest
            .strip_prefix("pub(super) ")
            .or_else(|| rest.strip_prefix("pub(crate) "))
            .or_else(|| rest.strip_prefix("pub "))
            .unwrap_or(rest);
        let Some(name) = rest.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            let name: String = name.chars().take_while(|&c| is_ident(c)).collect();
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn no_file_over_800_lines_no_function_over_90() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut long = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.strip_prefix(&src).unwrap().display().to_string();
        let n = text.lines().count();
        if n > 800 {
            long.push(format!("src/{shown}: {n} lines"));
        }
        // The front ends are argument parsing; their clap definitions are
        // moving to a module of their own.
        if shown.starts_with("bin/") {
            continue;
        }
        for (name, n) in function_lengths(&text) {
            if n > 90 {
                long.push(format!("src/{shown}: fn {name}: {n} lines"));
            }
        }
    }
    assert!(long.is_empty(), "too long:\n{}", long.join("\n"));
}
