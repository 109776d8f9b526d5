//! The API's token, on the real `hashgrad node` binary over real HTTP: the node writes a fresh
//! private cookie at each start and names it in its `listening` line; a write without the
//! token is refused with 401 and changes nothing, a wrong or stale token with 403, the right
//! one is served; reads need no token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A single-voter training node process (so a config write commits at once), killed on drop.
struct Proc {
    child: Child,
    http: SocketAddr,
    cookie: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fingerprint(dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(["id", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run hashgrad id");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn spawn(dir: &Path) -> Proc {
    let voter = fingerprint(dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("node")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--no-mine",
        ])
        .args(["--voter", &voter])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hashgrad node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    // "listening quic=ADDR http=ADDR id=HEX cookie=PATH"
    let http = line
        .split_whitespace()
        .find_map(|part| part.strip_prefix("http="))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no http address in {line:?}"));
    let cookie = line
        .trim_end()
        .split_once(" cookie=")
        .map(|(_, path)| PathBuf::from(path))
        .unwrap_or_else(|| panic!("no cookie path in {line:?}"));
    Proc {
        child,
        http,
        cookie,
    }
}

/// One exchange: the status code, the `WWW-Authenticate` header if any, and the body.
fn call(
    addr: SocketAddr,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Option<String>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("headers");
    let code = head[9..12].parse().expect("status code");
    let challenge = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate")
            .then(|| value.trim().to_string())
    });
    (code, challenge, body.to_string())
}

/// The config store's learning rate, read with no token once the single voter leads.
fn learning_rate(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, body) = call(addr, None, "GET", "/config/learning_rate", "");
        if code == 200 {
            let value: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            return value["value"].as_str().expect("a value").to_string();
        }
        // 503 until the node has elected itself.
        assert!(
            code == 503 && Instant::now() < deadline,
            "a read needs no token: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn writes_need_this_starts_token_and_reads_do_not() {
    let dir = tempfile::tempdir().expect("dir");
    let node = spawn(dir.path());
    assert_eq!(node.cookie, dir.path().join(".cookie"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&node.cookie)
            .expect("the cookie exists once the node listens")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only the node's user may read the token"
        );
    }
    let token = std::fs::read_to_string(&node.cookie).expect("cookie");
    let bearer = format!("Bearer {}", token.trim());
    let before = learning_rate(node.http);
    let path = "/config/learning_rate";

    let (code, challenge, body) = call(node.http, None, "PUT", path, "0.125");
    assert_eq!(code, 401, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"hashgrad\""));
    assert!(
        body.contains(".cookie"),
        "the refusal says where the token is: {body}"
    );
    let (code, _, body) = call(node.http, Some("Bearer 00"), "PUT", path, "0.125");
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = call(node.http, Some(token.trim()), "PUT", path, "0.125");
    assert_eq!(code, 403, "a token without `Bearer` is refused: {body}");
    assert_eq!(
        learning_rate(node.http),
        before,
        "a refused write changes nothing"
    );

    let (code, _, body) = call(node.http, Some(&bearer), "PUT", path, "0.125");
    assert_eq!(code, 200, "{body}");
    assert_eq!(learning_rate(node.http), "0.125");
    let (code, _, _) = call(node.http, None, "GET", "/status", "");
    assert_eq!(code, 200);

    // A restart writes a new token: the old one no longer works.
    drop(node);
    let node = spawn(dir.path());
    assert_eq!(
        learning_rate(node.http),
        "0.125",
        "the write outlived the restart"
    );
    let (code, _, body) = call(node.http, Some(&bearer), "PUT", path, "0.25");
    assert_eq!(code, 403, "the token of the last start is stale: {body}");
    let fresh = std::fs::read_to_string(&node.cookie).expect("cookie");
    assert_ne!(fresh, token);
    let (code, _, body) = call(
        node.http,
        Some(&format!("Bearer {}", fresh.trim())),
        "PUT",
        path,
        "0.25",
    );
    assert_eq!(code, 200, "{body}");
}
