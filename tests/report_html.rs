//! `hashgrad report` end to end: a generated testnet dir (real JSONL event logs, events.log,
//! summary.json, a client history) goes through the real binary, and the page is rendered in
//! headless Chromium (Debian's `chromium`), which must run its script without an error and
//! draw every section. Without Chromium the browser half prints that it skips (CI installs it).

mod report_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashgrad::report::SECTIONS;

fn report(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HASHGRAD_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Renders `page` headless: (the DOM after the page's script ran, Chromium's stderr).
fn render(browser: &Path, page: &Path, profile: &Path) -> (String, String) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while waiting: the DOM is bigger than a pipe's buffer.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let dom = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish rendering {} in 90 s",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (dom, log) = (dom.join().unwrap(), log.join().unwrap());
    assert!(status.success(), "chromium failed: {log}");
    (dom, log)
}

fn body_attribute(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let tag = &body[..body.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &tag[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// The text of a section's note (what it drew, or that it had nothing to draw).
fn section_note(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("<section id=\"{id}\">"))
        .unwrap_or_else(|| panic!("section {id}"));
    let rest = &dom[start..];
    let note = &rest[rest.find("<p class=\"note\">").expect("note") + 16..];
    note[..note.find("</p>").expect("note end")].to_owned()
}

/// Builds the page of a generated dir and checks what the file holds.
fn build(dir: &Path, jepsen: bool) -> PathBuf {
    report_support::generate(dir, 3, 30, true, jepsen);
    let page = dir.join("report.html");
    let (code, stdout, stderr) = report(&[dir, Path::new("-o"), &page]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("wrote "), "{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    for id in SECTIONS {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    assert!(!html.contains("<img"), "a node name became markup");
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "nothing is fetched"
    );
    page
}

#[test]
fn the_report_draws_every_section_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let page = build(dir.path(), true);
    let Some(browser) = chromium() else {
        eprintln!(
            "skipped: chromium not found (apt-get install chromium, or set HASHGRAD_CHROMIUM); \
             the page was built and checked without a browser"
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = render(&browser, &page, profile.path());
    assert_eq!(
        body_attribute(&dom, "data-errors"),
        None,
        "script errors; log:\n{log}"
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console output: {console:?}");
    let drawn = body_attribute(&dom, "data-drawn").expect("the script ran to its end");
    let drawn: Vec<&str> = drawn.split_whitespace().collect();
    assert_eq!(drawn, SECTIONS, "every section drawn, in order");
    // The hostile node name is text, not an element.
    assert!(!dom.contains("<img"), "a node name became markup");
    assert!(
        dom.contains("&lt;img/src=x/onerror=alert(1)&gt;"),
        "the name is shown as text"
    );
    // Each section drew its data, not its empty state.
    for id in SECTIONS {
        let note = section_note(&dom, id);
        assert!(!note.is_empty(), "section {id} says what it shows");
        assert!(
            !note.starts_with("no "),
            "section {id} drew nothing: {note}"
        );
    }
    assert!(dom.contains("<canvas"), "the space-time diagram");
    assert!(
        dom.contains("recovered from a crash (up to 4160 events lost)"),
        "the killed node's restart is marked"
    );
    assert!(dom.contains("not linearizable"), "the stale read is caught");
    assert!(dom.contains("<iframe"), "the checker's view is embedded");
}

#[test]
fn without_a_client_history_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let page = build(dir.path(), false);
    let Some(browser) = chromium() else {
        eprintln!("skipped: chromium not found (apt-get install chromium)");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = render(&browser, &page, profile.path());
    assert_eq!(body_attribute(&dom, "data-errors"), None, "log:\n{log}");
    assert!(section_note(&dom, "consistency").starts_with("no client history recorded"));
    let drawn = body_attribute(&dom, "data-drawn").unwrap_or_default();
    assert_eq!(drawn.split_whitespace().count(), SECTIONS.len());
}

#[test]
fn a_dir_with_nothing_to_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = report(&[dir.path()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nothing to report"), "{stderr}");
    let (code, _, stderr) = report(&[&dir.path().join("missing")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a directory"), "{stderr}");
}

/// Writes a generated dir for screenshots and timing, e.g.
/// `REPORT_DIR=/tmp/gen REPORT_NODES=5 REPORT_SECS=300 cargo test --test report_html -- --ignored`.
#[test]
#[ignore = "a tool, not a test: writes REPORT_DIR; scripts/measurements.sh report-dir runs it"]
fn generate_a_testnet_dir() {
    let Some(dir) = std::env::var_os("REPORT_DIR") else {
        eprintln!("set REPORT_DIR");
        return;
    };
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    report_support::generate(
        &dir,
        number("REPORT_NODES", 3) as usize,
        number("REPORT_SECS", 30),
        false,
        true,
    );
}
