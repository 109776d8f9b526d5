//! ARCHITECTURE.md stays a true map: every repository path it names in a code span exists,
//! every top-level module of `src/` has a row in its module table and a place in its layers,
//! and the page stays short enough to read in ten minutes. A moved file, a new module or a
//! map grown back into a changelog fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Code spans starting with one of these are paths in the repository.
const PATH_PREFIXES: [&str; 10] = [
    "src/",
    "tests/",
    "benches/",
    "scripts/",
    "configs/",
    "shaders/",
    "docs/",
    "fuzz/",
    "data/",
    "examples/",
];

/// The page's size bound ("at most ~15 KB": a map, not a changelog).
const MAX_BYTES: usize = 16_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn map() -> String {
    let path = root().join("ARCHITECTURE.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The code spans of `text`, line by line (a span never crosses a line here).
fn code_spans(text: &str) -> Vec<&str> {
    text.lines()
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .collect()
}

/// The lines of section `## title`, up to the next `## ` heading.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    text.lines()
        .skip_while(|line| line.trim_end() != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

/// The crate's top-level modules: `src/NAME.rs` (but `lib.rs` and `main.rs`) and
/// `src/NAME/mod.rs`.
fn top_level_modules() -> BTreeSet<String> {
    let src = root().join("src");
    let entries =
        fs::read_dir(&src).unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()));
    let mut modules = BTreeSet::new();
    for entry in entries {
        let path = entry.expect("a readable entry of src/").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() && path.join("mod.rs").is_file() {
            modules.insert(name.to_string());
        } else if let Some(module) = name.strip_suffix(".rs")
            && module != "lib"
            && module != "main"
        {
            modules.insert(module.to_string());
        }
    }
    modules
}

#[test]
fn backticks_are_paired_on_every_line() {
    let text = map();
    let unpaired: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.matches('`').count() % 2 == 1)
        .map(|(i, line)| (i + 1, line))
        .collect();
    assert!(
        unpaired.is_empty(),
        "ARCHITECTURE.md has lines with an odd number of backticks (a code span left open), \
         so paths in them would not be checked: {unpaired:?}"
    );
}

#[test]
fn every_named_path_exists() {
    let text = map();
    let paths: BTreeSet<&str> = code_spans(&text)
        .into_iter()
        .filter(|span| PATH_PREFIXES.iter().any(|prefix| span.starts_with(prefix)))
        .filter(|span| !span.contains(char::is_whitespace))
        .collect();
    assert!(
        paths.len() >= 10,
        "found only {} paths in ARCHITECTURE.md; is the extraction broken? {paths:?}",
        paths.len()
    );
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|path| !root().join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist (moved or removed? update the map): \
         {missing:?}"
    );
}

#[test]
fn every_top_level_module_has_a_row_in_the_module_table() {
    let text = map();
    let rows = section(&text, "Modules");
    // The first cell of each row names its modules in code spans.
    let named: BTreeSet<&str> = rows
        .iter()
        .filter_map(|row| row.strip_prefix("| "))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .collect();
    let modules = top_level_modules();
    assert!(
        modules.contains("node") && modules.contains("pow"),
        "module discovery found {modules:?}"
    );
    let missing: Vec<&String> = modules
        .iter()
        .filter(|module| !named.contains(module.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "top-level modules without a row in ARCHITECTURE.md's module table (add one: what it \
         owns, what it must not do): {missing:?}"
    );
}

#[test]
fn every_top_level_module_has_a_kind_and_a_place_in_the_import_order() {
    let text = map();
    let layers = section(&text, "Layers");
    // The kinds table: rows of `| kind | modules | what it means |`.
    let kinds: BTreeSet<&str> = layers
        .iter()
        .filter(|line| line.starts_with("| "))
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .collect();
    // The import order: the lines that chain groups of modules with arrows.
    let ordered: BTreeSet<&str> = layers
        .iter()
        .filter(|line| line.contains('→'))
        .flat_map(|line| line.split('`').skip(1).step_by(2))
        .collect();
    let modules = top_level_modules();
    let without_kind: Vec<&String> = modules
        .iter()
        .filter(|module| !kinds.contains(module.as_str()))
        .collect();
    let without_place: Vec<&String> = modules
        .iter()
        .filter(|module| !ordered.contains(module.as_str()))
        .collect();
    assert!(
        without_kind.is_empty() && without_place.is_empty(),
        "top-level modules missing from ARCHITECTURE.md's layers: without a kind (the table) \
         {without_kind:?}, without a place in the import order (the arrows) {without_place:?}"
    );
}

#[test]
fn the_map_stays_short() {
    let bytes = map().len();
    assert!(
        bytes <= MAX_BYTES,
        "ARCHITECTURE.md is {bytes} bytes, over {MAX_BYTES}: it is a map a newcomer reads in ten \
         minutes; details belong in the modules' `//!` headers"
    );
}
/// The import order's groups, lowest first (the lines with arrows in `## Layers`).
fn import_order(text: &str) -> Vec<Vec<String>> {
    let layers = section(text, "Layers");
    let chain: String = layers
        .iter()
        .filter(|line| line.contains('→'))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    chain
        .split('→')
        .map(|group| {
            group
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Every `.rs` file under `path` (a file or a dir).
fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn imports_go_down_the_layers() {
    let text = map();
    let rank: std::collections::BTreeMap<String, usize> = import_order(&text)
        .into_iter()
        .enumerate()
        .flat_map(|(i, group)| group.into_iter().map(move |m| (m, i)))
        .collect();
    let mut upward = BTreeSet::new();
    for (module, &own) in &rank {
        let dir = root().join("src").join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            root().join("src").join(format!("{module}.rs"))
        };
        for file in rust_files(&path) {
            let source = fs::read_to_string(&file).unwrap_or_default();
            for line in source.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for used in line.split("crate::").skip(1) {
                    let name: String = used
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if let Some(&theirs) = rank.get(&name)
                        && name != *module
                        && theirs >= own
                    {
                        upward.insert(format!("{module} -> {name} ({})", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against ARCHITECTURE.md's order: {upward:#?}"
    );
}
