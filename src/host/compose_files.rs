//! What a compose project's files define: the names of its services, read as compose reads
//! them, so that no service the files define is ever called an orphan.
//!
//! The files belong to whoever cloned the repository, so they are data: read only if they
//! are regular files of bounded size, parsed without expanding aliases (a "billion laughs"
//! file costs its own size, no more), followed through `include:` to a bounded depth, and
//! anything portreap cannot evaluate (interpolated or remote includes) makes the project
//! "not judged", never "orphan".
//!
//! Compose unions the services of every `-f` file and override (all in the
//! `config_files` label) and of every `include:` (not in the label). A service behind an
//! inactive profile is still defined; `extends` adds no service. YAML merge keys (`<<`)
//! may bring service names in from an anchor.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The largest compose file read: real ones are a few KiB.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;
/// How deep `include:` is followed, and how many files one project may read in all.
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 64;

/// What a project's files define.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definition {
    /// Every service name, over all files.
    pub services: BTreeSet<String>,
    /// The top-level `name:` of the first file that sets one.
    pub name: Option<String>,
    /// Every file read (includes too), host paths.
    pub files: Vec<String>,
}

/// Why a project's files were not judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unjudged {
    /// The file could not be opened or read.
    Unreadable { path: String, error: String },
    /// Not a regular file (a FIFO, a device).
    NotRegular { path: String },
    /// Larger than [`MAX_FILE`].
    TooLarge { path: String },
    /// Not YAML compose can read.
    Unparsable { path: String, error: String },
    /// An `include:` portreap cannot evaluate: interpolated, remote, or too deep.
    Include { path: String, what: String },
}

impl fmt::Display for Unjudged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unjudged::Unreadable { path, error } => write!(f, "{path} cannot be read: {error}"),
            Unjudged::NotRegular { path } => write!(f, "{path} is not a regular file"),
            Unjudged::TooLarge { path } => {
                write!(f, "{path} is larger than {} MiB", MAX_FILE / (1024 * 1024))
            }
            Unjudged::Unparsable { path, error } => write!(f, "{path} is not valid YAML: {error}"),
            Unjudged::Include { path, what } => {
                write!(f, "{path} includes {what}, which portreap cannot follow")
            }
        }
    }
}

impl std::error::Error for Unjudged {}

/// Reads the project whose `files` (host paths, as the label names them after resolving
/// v1's relative names) are seen under `root`.
pub fn read(root: &Path, files: &[String]) -> Result<Definition, Unjudged> {
    let mut definition = Definition::default();
    let mut queue: Vec<(String, usize)> = files.iter().map(|f| (f.clone(), 0)).collect();
    queue.reverse();
    while let Some((path, depth)) = queue.pop() {
        if definition.files.contains(&path) {
            continue;
        }
        if depth > MAX_DEPTH || definition.files.len() >= MAX_FILES {
            return Err(Unjudged::Include {
                path,
                what: format!("more than {MAX_DEPTH} levels or {MAX_FILES} files"),
            });
        }
        let text = read_bounded(&super::compose::under(root, &path), &path)?;
        let doc = Doc::parse(&text).map_err(|error| Unjudged::Unparsable {
            path: path.clone(),
            error: error.to_string(),
        })?;
        for include in doc.includes(&path)? {
            queue.push((include, depth + 1));
        }
        definition.services.extend(doc.services());
        if definition.name.is_none() {
            definition.name = doc.name();
        }
        definition.files.push(path);
    }
    Ok(definition)
}

/// The file's text: a regular file (checked on the open descriptor, so a FIFO never
/// blocks and a swapped link is caught) of at most [`MAX_FILE`] bytes.
fn read_bounded(at: &Path, path: &str) -> Result<String, Unjudged> {
    let unreadable = |e: std::io::Error| Unjudged::Unreadable {
        path: path.to_owned(),
        error: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(at)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(Unjudged::NotRegular {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Unjudged::TooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|e| Unjudged::Unparsable {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

/// One YAML node; aliases stay references, so nothing is ever copied.
#[derive(Debug)]
enum Node {
    Scalar(String, TScalarStyle),
    Seq(Vec<usize>),
    Map(Vec<(usize, usize)>),
    Alias(usize),
}

/// A parsed file: every node of every document in one arena.
#[derive(Debug, Default)]
struct Doc {
    nodes: Vec<Node>,
    /// Anchor id to the node it names.
    anchors: HashMap<usize, usize>,
    /// Each document's root node.
    roots: Vec<usize>,
    /// Open collections, and for a mapping the key waiting for its value.
    open: Vec<(usize, Option<usize>)>,
}

impl MarkedEventReceiver for Doc {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        let (node, anchor, opens) = match event {
            Event::Scalar(text, style, anchor, _) => (Node::Scalar(text, style), anchor, false),
            Event::Alias(id) => (Node::Alias(id), 0, false),
            Event::SequenceStart(anchor, _) => (Node::Seq(Vec::new()), anchor, true),
            Event::MappingStart(anchor, _) => (Node::Map(Vec::new()), anchor, true),
            Event::SequenceEnd | Event::MappingEnd => {
                self.open.pop();
                return;
            }
            _ => return,
        };
        let index = self.nodes.len();
        self.nodes.push(node);
        if anchor != 0 {
            self.anchors.insert(anchor, index);
        }
        self.attach(index);
        if opens {
            self.open.push((index, None));
        }
    }
}

impl Doc {
    fn parse(text: &str) -> Result<Doc, yaml_rust2::ScanError> {
        let mut doc = Doc::default();
        Parser::new_from_str(text).load(&mut doc, true)?;
        Ok(doc)
    }

    /// Puts node `index` where the parser is: a document root, a sequence item, or a
    /// mapping's key or value.
    fn attach(&mut self, index: usize) {
        let Some((parent, pending)) = self.open.last_mut() else {
            self.roots.push(index);
            return;
        };
        match (&mut self.nodes[*parent], pending.take()) {
            (Node::Seq(items), _) => items.push(index),
            (Node::Map(entries), Some(key)) => entries.push((key, index)),
            (Node::Map(_), None) => *pending = Some(index),
            _ => {}
        }
    }

    /// The node `index` stands for, through one alias (anchors always name real nodes).
    fn resolve(&self, index: usize) -> Option<&Node> {
        match self.nodes.get(index)? {
            Node::Alias(id) => self.nodes.get(*self.anchors.get(id)?),
            node => Some(node),
        }
    }

    fn scalar(&self, index: usize) -> Option<&str> {
        match self.resolve(index)? {
            Node::Scalar(text, _) => Some(text),
            _ => None,
        }
    }

    /// The value under `key` in each document's top-level mapping.
    fn top(&self, key: &str) -> impl Iterator<Item = usize> + '_ {
        let key = key.to_owned();
        self.roots
            .iter()
            .filter_map(move |&root| match self.resolve(root)? {
                Node::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| self.scalar(*k) == Some(&key))
                    .map(|(_, v)| *v),
                _ => None,
            })
    }

    /// The keys of mapping `index`, merge keys (`<<: *anchor`, `<<: [*a, *b]`) included.
    fn keys(&self, index: usize, depth: usize, out: &mut BTreeSet<String>) {
        let Some(Node::Map(entries)) = self.resolve(index) else {
            return;
        };
        for &(key, value) in entries {
            let merge = matches!(
                self.resolve(key),
                Some(Node::Scalar(text, TScalarStyle::Plain)) if text == "<<"
            );
            if !merge {
                if let Some(name) = self.scalar(key) {
                    out.insert(name.to_owned());
                }
                continue;
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            match self.resolve(value) {
                Some(Node::Seq(items)) => {
                    for &item in items {
                        self.keys(item, depth + 1, out);
                    }
                }
                _ => self.keys(value, depth + 1, out),
            }
        }
    }

    fn services(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for services in self.top("services") {
            self.keys(services, 0, &mut out);
        }
        out
    }

    fn name(&self) -> Option<String> {
        self.top("name")
            .find_map(|n| self.scalar(n))
            .map(str::to_owned)
    }

    /// The files `include:` names, as host paths (relative ones against the including
    /// file's directory, as compose resolves them).
    fn includes(&self, file: &str) -> Result<Vec<String>, Unjudged> {
        let mut paths = Vec::new();
        for include in self.top("include") {
            let Some(Node::Seq(items)) = self.resolve(include) else {
                continue;
            };
            for &item in items {
                match self.resolve(item) {
                    Some(Node::Map(entries)) => {
                        let path = entries
                            .iter()
                            .find(|(k, _)| self.scalar(*k) == Some("path"))
                            .map(|(_, v)| *v);
                        match path.and_then(|p| self.resolve(p)) {
                            Some(Node::Seq(list)) => paths.extend(list.iter().copied()),
                            Some(_) => paths.extend(path),
                            None => {}
                        }
                    }
                    _ => paths.push(item),
                }
            }
        }
        let dir = Path::new(file).parent().unwrap_or(Path::new("/"));
        paths
            .into_iter()
            .map(|p| {
                let text = self.scalar(p).unwrap_or_default();
                let remote = ["oci://", "git@", "http://", "https://"]
                    .iter()
                    .any(|s| text.starts_with(s));
                if text.is_empty() || text.contains('$') || remote || text.starts_with('~') {
                    return Err(Unjudged::Include {
                        path: file.to_owned(),
                        what: format!("{text:?}"),
                    });
                }
                Ok(normalize(&dir.join(text)))
            })
            .collect()
    }
}

/// `a/./b/../c` as `a/c`, lexically (compose does not resolve links either).
fn normalize(path: &Path) -> String {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let first = format!("/{}", files[0].0);
        (dir, vec![first])
    }

    fn services(def: &Definition) -> Vec<&str> {
        def.services.iter().map(String::as_str).collect()
    }

    #[test]
    fn services_of_every_file_include_profile_and_anchor() {
        let (dir, mut files) = project(&[
            (
                "shop/compose.yaml",
                "name: shop\n\
                 x-base: &base {image: busybox}\n\
                 include:\n  - ../common/db.yaml\n  - path: [sub/cache.yaml]\n\
                 services:\n  web: *base\n  admin:\n    <<: *base\n    profiles: [debug]\n",
            ),
            (
                "shop/override.yaml",
                "services:\n  worker: {image: busybox}\n",
            ),
            ("common/db.yaml", "services:\n  db: {image: busybox}\n"),
            (
                "shop/sub/cache.yaml",
                "services:\n  cache: {image: busybox}\n",
            ),
        ]);
        files.push("/shop/override.yaml".into());
        let def = read(dir.path(), &files).unwrap();
        assert_eq!(
            services(&def),
            ["admin", "cache", "db", "web", "worker"],
            "{def:?}"
        );
        assert_eq!(def.name.as_deref(), Some("shop"));
        assert_eq!(def.files.len(), 4);
    }

    #[test]
    fn merge_keys_bring_service_names_in() {
        let (dir, files) = project(&[(
            "c.yaml",
            "x-pair: &pair\n  a: {}\n  b: {}\nx-c: &c\n  c: {}\nservices:\n  <<: [*pair, *c]\n  d: {}\n",
        )]);
        let def = read(dir.path(), &files).unwrap();
        assert_eq!(services(&def), ["a", "b", "c", "d"]);
    }

    #[test]
    fn an_alias_bomb_costs_its_size_only() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..40 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text.push_str("services:\n  web: {}\n");
        let (dir, files) = project(&[("bomb.yaml", &text)]);
        let def = read(dir.path(), &files).unwrap();
        assert_eq!(services(&def), ["web"]);
    }

    #[test]
    fn what_cannot_be_followed_is_not_judged() {
        let cases = [
            ("include:\n  - ${DIR}/x.yaml\n", "includes"),
            ("include:\n  - oci://registry/x\n", "includes"),
            ("services: [unclosed\n", "not valid YAML"),
            ("include:\n  - missing.yaml\n", "cannot be read"),
        ];
        for (text, why) in cases {
            let (dir, files) = project(&[("c.yaml", text)]);
            let err = read(dir.path(), &files).unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
        let (dir, files) = project(&[("c.yaml", "include: [c.yaml]\nservices: {a: {}}\n")]);
        assert_eq!(
            services(&read(dir.path(), &files).unwrap()),
            ["a"],
            "a file including itself is read once"
        );
    }

    #[test]
    fn a_fifo_or_a_huge_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = read(dir.path(), &["/fifo.yaml".into()]).unwrap_err();
        assert!(matches!(err, Unjudged::NotRegular { .. }), "{err}");
        let big = format!("# {}\n", "x".repeat(MAX_FILE as usize));
        std::fs::write(dir.path().join("big.yaml"), big).unwrap();
        let err = read(dir.path(), &["/big.yaml".into()]).unwrap_err();
        assert!(matches!(err, Unjudged::TooLarge { .. }), "{err}");
    }
}
