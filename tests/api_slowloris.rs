//! The HTTP API closes connections whose request headers do not arrive in time: a slowloris
//! client (a partial request, headers dripped a byte at a time, or a silent connection) cannot
//! hold a connection open past the header-read timeout, and the server keeps answering others.
//! Real TCP on loopback against `api::serve_with_header_timeout`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hashgrad::api::{self, Metrics};
use hashgrad::net::NodeId;
use hashgrad::pow::{BlockHash, Work};
use hashgrad::views::{ChainView, NodeViews};
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_millis(400);

/// Reads until the server closes the connection; how long that took, or `None` when it was
/// still open after `limit` (or it answered, which a partial request must never get).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => Some(started.elapsed()),
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            Some(started.elapsed())
        }
        Ok(n) => panic!(
            "a partial request got an answer: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => None,
    }
}

fn full_get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_partial_request_headers_get_the_connection_closed() {
    let (_view, view_rx) = watch::channel(ChainView {
        network: "regtest".into(),
        node: NodeId([1; 32]),
        height: 0,
        tip: BlockHash([0; 32]),
        total_work: Work::default(),
        peers: Vec::new(),
        hash_rate: 0.0,
        backend: "none".into(),
        mining: false,
        blocks_mined: 0,
        receipts_pooled: 0,
        listen: SocketAddr::from(([127, 0, 0, 1], 1)),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dir = tempfile::tempdir().expect("dir");
    let addr = api::serve_with_header_timeout(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        api::ApiParts {
            views: NodeViews {
                chain: view_rx,
                consensus: None,
                training: None,
                stratum: None,
                params: None,
            },
            metrics: Metrics::new(),
            config: None,
            receipts: None,
            worker: None,
            cookie: api::Cookie::create(dir.path()).expect("cookie"),
        },
        async move {
            let _ = stopped.await;
        },
        TIMEOUT,
    )
    .await
    .expect("serve");

    tokio::task::spawn_blocking(move || {
        // A request line and one header, never finished.
        let mut partial = TcpStream::connect(addr).expect("connect");
        write!(partial, "GET /status HTTP/1.1\r\nHost: {addr}\r\n").expect("partial");
        // A connection that sends nothing at all.
        let mut silent = TcpStream::connect(addr).expect("connect");
        // Headers dripped a byte every 50 ms: each byte is "activity", none completes them.
        let mut drip = TcpStream::connect(addr).expect("connect");
        let dripping = std::thread::spawn({
            let mut drip = drip.try_clone().expect("clone");
            move || {
                for byte in b"GET /status HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                    if drip.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        // Meanwhile the server answers a well-behaved client.
        let answer = full_get(addr);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("regtest"), "{answer}");

        let limit = TIMEOUT * 5;
        for (name, stream) in [
            ("partial", &mut partial),
            ("silent", &mut silent),
            ("dripping", &mut drip),
        ] {
            let took = closed_within(stream, limit)
                .unwrap_or_else(|| panic!("the {name} connection was still open after {limit:?}"));
            assert!(took <= limit, "{name}: {took:?}");
        }
        let _ = dripping.join();
        let answer = full_get(addr);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .expect("client");
    let _ = stop.send(());
}
