//! The crate's layering, checked from its source: no source file imports, directly or
//! through others, a file that imports it back, and no source file is over 700 lines.
//!
//! A file imports another when its code (tests aside) names a path into it: `use` trees,
//! and paths in types, expressions and patterns (`crate::…`, `super::…`, `self::…`, a
//! child module's name). A path ends in the longest prefix of it that is a source file,
//! so `use super::GpuContext` in `gpu/rows.rs` imports `gpu/mod.rs` (a facade that
//! re-exports is imported through). `crate::Name` of an item of `lib.rs` imports `lib.rs`.
//! Paths inside macro invocations are not seen. The command line's files (`main.rs`,
//! `cli/`) are a crate of their own, above the library, and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Module path (`["backend", "cpu", "session"]`; `[]` for lib.rs) of every file under src.
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(stem);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if prefix.first().is_some_and(|p| p == "cli") || (prefix.is_empty() && stem == "main") {
                continue;
            }
            let mut module = prefix.to_vec();
            match stem.as_str() {
                "mod" => {}
                // The binary's files are a crate of their own.
                "lib" | "main" if prefix.is_empty() => {}
                _ => module.push(stem),
            }
            out.insert(module, path);
        }
    }
}

/// The paths a file names, each made absolute (`crate` first segment dropped).
struct Paths {
    /// The module the code being visited is in: the file's, then any inline module's.
    module: Vec<String>,
    found: Vec<Vec<String>>,
}

impl Paths {
    /// `segments` as a path from the crate root, when it starts at `crate`, `super` or
    /// `self`; other first segments are kept as they are (a child module, or anything else).
    fn absolute(&self, segments: &[String]) -> Vec<String> {
        let mut base: Vec<String> = self.module.to_vec();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            // A child module's name, or anything else (a crate, a type): from here.
            _ => {}
        }
        base.extend(rest.iter().cloned());
        base
    }

    fn tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.add(prefix, Some(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.add(prefix, Some(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.add(prefix, None),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.tree(prefix, t)),
        }
    }

    fn add(&mut self, prefix: &[String], last: Option<String>) {
        let mut segments = prefix.to_vec();
        segments.extend(last.filter(|l| l != "self"));
        if !segments.is_empty() {
            let path = self.absolute(&segments);
            self.found.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = m.attrs.iter().any(|a| {
            a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
        });
        if !test {
            self.module.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            let path = self.absolute(&segments);
            self.found.push(path);
        }
        syn::visit::visit_path(self, p);
    }
}

/// Each file's imports: the files its paths end in.
fn graph(files: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let lib_items: BTreeSet<String> = {
        let text = std::fs::read_to_string(&files[&Vec::new()]).unwrap();
        let lib = syn::parse_file(&text).unwrap();
        let mut paths = Paths {
            module: Vec::new(),
            found: Vec::new(),
        };
        paths.visit_file(&lib);
        let mut names: BTreeSet<String> = paths
            .found
            .iter()
            .filter_map(|p| p.last().cloned())
            .collect();
        for item in &lib.items {
            if let syn::Item::Fn(f) = item {
                names.insert(f.sig.ident.to_string());
            }
        }
        names
    };
    let mut edges = BTreeMap::new();
    for (module, path) in files {
        let text = std::fs::read_to_string(path).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut paths = Paths {
            module: module.clone(),
            found: Vec::new(),
        };
        paths.visit_file(&ast);
        let mut to = BTreeSet::new();
        for p in paths.found {
            let Some(n) = (0..=p.len()).rev().find(|&n| files.contains_key(&p[..n])) else {
                continue;
            };
            let target = p[..n].to_vec();
            // `crate::Name` ends in lib.rs only when lib.rs defines or re-exports `Name`.
            let root_item = n > 0 || p.first().is_some_and(|s| lib_items.contains(s));
            if &target != module && root_item {
                to.insert(target);
            }
        }
        edges.insert(module.clone(), to);
    }
    edges
}

/// The strongly connected groups of more than one file (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<BTreeSet<Vec<String>>> {
    struct Tarjan<'g> {
        edges: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, (usize, usize)>,
        stack: Vec<&'g Vec<String>>,
        groups: Vec<BTreeSet<Vec<String>>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g Vec<String>) {
            let i = self.index.len();
            self.index.insert(v, (i, i));
            self.stack.push(v);
            for w in &self.edges[v] {
                match self.index.get(w).copied() {
                    None => {
                        self.visit(w);
                        let low = self.index[w].1.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some((wi, _)) if self.stack.contains(&w) => {
                        let low = wi.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some(_) => {}
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let at = self.stack.iter().position(|x| *x == v).unwrap();
                let group: BTreeSet<Vec<String>> = self.stack.drain(at..).cloned().collect();
                if group.len() > 1 {
                    self.groups.push(group);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        groups: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.groups
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("/")
    }
}

fn source_files() -> BTreeMap<Vec<String>, PathBuf> {
    let mut files = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut files,
    );
    files
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let edges = graph(&source_files());
    let groups = cycles(&edges);
    let described: Vec<String> = groups
        .iter()
        .map(|members| {
            let inside: Vec<String> = members
                .iter()
                .map(|m| {
                    let to: Vec<String> = edges[m]
                        .iter()
                        .filter(|t| members.contains(*t))
                        .map(|t| name(t))
                        .collect();
                    format!("  {} -> {}", name(m), to.join(", "))
                })
                .collect();
            inside.join("\n")
        })
        .collect();
    assert!(
        groups.is_empty(),
        "import cycles:\n{}",
        described.join("\n\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_through_a_facade() {
    // The checker's own test: were backend/mod.rs to re-export the CPU backend's session,
    // which implements backend's `Session`, the two would form a cycle.
    let mut edges = graph(&source_files());
    let backend = vec!["backend".to_string()];
    let session: Vec<String> = ["backend", "cpu", "session"].map(String::from).to_vec();
    assert!(
        edges[&session].contains(&backend),
        "cpu/session.rs implements backend's Session"
    );
    edges.get_mut(&backend).unwrap().insert(session.clone());
    let groups = cycles(&edges);
    assert_eq!(groups.len(), 1);
    assert!(groups[0].contains(&backend) && groups[0].contains(&session));
}

#[test]
fn no_source_file_is_over_700_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 700 {
                    long.push(format!(
                        "{} ({lines} lines)",
                        path.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these by concern: {}",
        long.join(", ")
    );
}

#[test]
fn the_vocabulary_and_the_backends_import_nothing_above_them() {
    let edges = graph(&source_files());
    let above = [
        "selection",
        "solve",
        "train",
        "checkpoint",
        "verify",
        "predict",
        "model_file",
        "params_file",
        "fitted",
        "bench",
        "plot",
        "fuzzing",
    ];
    let mut wrong = Vec::new();
    for (module, to) in &edges {
        let first = module.first().map(String::as_str);
        let allowed_backend = first == Some("backend");
        if !matches!(first, Some("backend" | "descent")) {
            continue;
        }
        for target in to {
            let t = target.first().map(String::as_str);
            let upward = target.is_empty()
                || t.is_some_and(|t| above.contains(&t))
                || (!allowed_backend && t == Some("backend"));
            if upward {
                wrong.push(format!("{} -> {}", name(module), name(target)));
            }
        }
    }
    assert!(wrong.is_empty(), "imports upward: {}", wrong.join(", "));
}
