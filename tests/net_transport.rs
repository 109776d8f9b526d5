//! The QUIC transport on real loopback sockets: handshake, gossip, request/response, refusal
//! with the reason on both sides, bans for bad frames, pins and the partition hook.

use std::net::SocketAddr;
use std::time::Duration;

use hashgrad::net::frame::{self, Hello};
use hashgrad::net::{
    Identity, Message, NetConfig, NetEvent, Network, NodeId, Service, ServiceFrame, tls,
};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

fn config(network: &str, genesis: u8) -> NetConfig {
    let mut config = NetConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        network,
        [genesis; 32],
    );
    config.request_timeout = Duration::from_secs(5);
    config
}

fn bind(config: NetConfig) -> (Network, Receiver<NetEvent>) {
    Network::bind(Identity::generate().expect("identity"), config).expect("bind")
}

/// Waits for the first event that `pick` accepts, skipping others.
async fn next<T>(
    events: &mut Receiver<NetEvent>,
    mut pick: impl FnMut(NetEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("network alive");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("event within the timeout")
}

#[tokio::test]
async fn peers_connect_gossip_and_answer_requests() {
    let (a, mut a_events) = bind(config("regtest", 1));
    let (b, mut b_events) = bind(config("regtest", 1));
    let b_id = a.dial(b.local_addr(), None).await.expect("dial");
    assert_eq!(b_id, b.id());
    let (peer, listen) = next(&mut b_events, |e| match e {
        NetEvent::Connected {
            peer, listen_addr, ..
        } => Some((peer, listen_addr)),
        _ => None,
    })
    .await;
    assert_eq!(peer, a.id());
    assert_eq!(listen, Some(a.local_addr()));
    assert!(b.knows_addr(a.local_addr()) && a.knows_addr(b.local_addr()));

    // Gossip from A reaches B.
    assert_eq!(a.broadcast(&Message::Block(vec![1, 2, 3]), None), 1);
    let (from, bytes) = next(&mut b_events, |e| match e {
        NetEvent::Block { peer, bytes } => Some((peer, bytes)),
        _ => None,
    })
    .await;
    assert_eq!((from, bytes), (a.id(), vec![1, 2, 3]));

    // A request from B is answered by A's node (played by this test).
    let asking = tokio::spawn({
        let b = b.clone();
        let a_id = a.id();
        async move {
            b.request(a_id, Message::GetBlocks(vec![[9; 32], [8; 32]]))
                .await
        }
    });
    let (request, reply) = next(&mut a_events, |e| match e {
        NetEvent::Request { request, reply, .. } => Some((request, reply)),
        _ => None,
    })
    .await;
    assert_eq!(request, Message::GetBlocks(vec![[9; 32], [8; 32]]));
    reply
        .send(vec![
            Message::Block(vec![7; 100]),
            Message::NotFound([8; 32]),
        ])
        .expect("reply");
    let answer = asking.await.expect("join").expect("answer");
    assert_eq!(
        answer,
        vec![Message::Block(vec![7; 100]), Message::NotFound([8; 32])]
    );
}

#[tokio::test]
async fn a_network_mismatch_is_refused_with_the_reason_on_both_sides() {
    let (a, mut a_events) = bind(config("regtest", 1));
    let (b, mut b_events) = bind(config("othernet", 1));
    let error = a.dial(b.local_addr(), None).await.expect_err("refused");
    let shown = error.to_string();
    assert!(
        shown.contains("`regtest`") && shown.contains("`othernet`"),
        "{shown}"
    );
    let on_a = next(&mut a_events, |e| match e {
        NetEvent::Refused { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    let on_b = next(&mut b_events, |e| match e {
        NetEvent::Refused { reason, .. } => Some(reason),
        _ => None,
    })
    .await;
    assert!(
        on_a.contains("refused by the peer") && on_a.contains("othernet"),
        "{on_a}"
    );
    assert!(
        on_b.contains("`regtest`") && on_b.contains("`othernet`"),
        "{on_b}"
    );
    assert!(a.peers().is_empty() && b.peers().is_empty());

    // Same name, different genesis.
    let (c, _c_events) = bind(config("regtest", 2));
    let error = a.dial(c.local_addr(), None).await.expect_err("refused");
    assert!(error.to_string().contains("genesis"), "{error}");
}

/// A hand-driven client with `identity`: valid TLS and hello, connected to `server`; returns
/// its endpoint, the connection and the gossip stream's halves: the send half to write raw
/// frames on, the receive half held unread.
async fn hand_client(
    server: &Network,
    events: &mut Receiver<NetEvent>,
    identity: &Identity,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let mut endpoint =
        quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("client endpoint");
    endpoint.set_default_client_config(
        tls::client_config(identity, &[], Duration::from_secs(10)).expect("client config"),
    );
    let connection = endpoint
        .connect(server.local_addr(), tls::SERVER_NAME)
        .expect("connect")
        .await
        .expect("tls");
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    let hello = Message::Hello(Hello {
        version: hashgrad::net::PROTOCOL_VERSION,
        network: "regtest".into(),
        genesis: [1; 32],
        listen_port: 0,
    });
    send.write_all(&frame::encode(&hello).expect("encode"))
        .await
        .expect("hello");
    let mut header = [0u8; 5];
    recv.read_exact(&mut header).await.expect("server hello");
    next(events, |e| {
        matches!(e, NetEvent::Connected { .. }).then_some(())
    })
    .await;
    (endpoint, connection, send, recv)
}

#[tokio::test]
async fn a_malformed_frame_gets_the_sender_banned() {
    let mut server_config = config("regtest", 1);
    server_config.ban = Duration::from_secs(60);
    let (server, mut events) = bind(server_config);
    let identity = Identity::generate().expect("identity");
    let client_id = identity.id();
    let (_endpoint, connection, mut send, _recv) =
        hand_client(&server, &mut events, &identity).await;
    // A Block frame claiming 4 GiB.
    send.write_all(&[0x10, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    let reason = next(&mut events, |e| match e {
        NetEvent::Disconnected { peer, reason } if peer == client_id => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("exceeds its limit"), "{reason}");
    assert!(server.is_banned(&client_id));
    let closed = tokio::time::timeout(WAIT, connection.closed())
        .await
        .expect("closed");
    assert!(closed.to_string().contains("banned"), "{closed}");

    // Redialling while banned is refused with the ban as the reason.
    let (retry, _retry_events) = Network::bind(identity, config("regtest", 1)).expect("bind");
    let error = retry
        .dial(server.local_addr(), None)
        .await
        .expect_err("banned");
    assert!(error.to_string().contains("banned"), "{error}");
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_disconnected_when_its_outbox_fills_and_may_come_back() {
    let mut server_config = config("regtest", 1);
    server_config.gossip_outbox_bytes = 256 << 10;
    let (server, mut events) = bind(server_config);
    let identity = Identity::generate().expect("identity");
    let client_id = identity.id();
    // The hand client reads nothing after the server's hello: QUIC takes the first 1.25 MB
    // (its stream window), then the outbox fills.
    let (_endpoint, connection, _send, _recv) = hand_client(&server, &mut events, &identity).await;
    let block = Message::Block(vec![7; 60_000]);
    let mut queued = 0;
    for _ in 0..200 {
        queued += server.broadcast(&block, None);
        tokio::task::yield_now().await;
    }
    assert!(
        queued < 200,
        "every broadcast was queued: the bound never applied"
    );
    let reason = next(&mut events, |e| match e {
        NetEvent::Disconnected { peer, reason } if peer == client_id => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("outbox"), "{reason}");
    let closed = tokio::time::timeout(WAIT, connection.closed())
        .await
        .expect("closed");
    assert!(closed.to_string().contains("outbox full"), "{closed}");
    assert!(server.peers().is_empty());
    assert_eq!(server.broadcast(&block, None), 0);

    // Disconnected, not banned: the same key connects again.
    assert!(!server.is_banned(&client_id));
    let (_again, _connection, _send, _recv) = hand_client(&server, &mut events, &identity).await;
    assert_eq!(server.peers().len(), 1);
}

#[tokio::test]
async fn pins_refuse_other_keys() {
    let (a, _a_events) = bind(config("regtest", 1));
    let (b, _b_events) = bind(config("regtest", 1));
    let wrong = NodeId([0xab; 32]);
    let error = a
        .dial(b.local_addr(), Some(wrong))
        .await
        .expect_err("pinned");
    assert!(error.to_string().contains("pinned"), "{error}");
    a.dial(b.local_addr(), Some(b.id()))
        .await
        .expect("right pin");

    let mut pinned = config("regtest", 1);
    pinned.pins = vec![wrong];
    let (c, _c_events) = bind(pinned);
    assert!(a.dial(c.local_addr(), None).await.is_err());
}

#[tokio::test]
async fn a_partition_cuts_and_heals() {
    let (a, mut a_events) = bind(config("regtest", 1));
    let (b, _b_events) = bind(config("regtest", 1));
    a.dial(b.local_addr(), None).await.expect("dial");
    next(&mut a_events, |e| {
        matches!(e, NetEvent::Connected { .. }).then_some(())
    })
    .await;

    a.partition().cut(&[b.id()]);
    next(&mut a_events, |e| {
        matches!(e, NetEvent::Disconnected { .. }).then_some(())
    })
    .await;
    assert!(a.peers().is_empty());
    assert!(
        a.dial(b.local_addr(), None).await.is_err(),
        "cut peers are refused"
    );
    assert!(
        b.dial(a.local_addr(), None).await.is_err(),
        "in both directions"
    );
    assert_eq!(a.broadcast(&Message::Block(vec![1]), None), 0);

    a.partition().heal();
    a.dial(b.local_addr(), None).await.expect("healed");
    assert_eq!(a.peers().len(), 1);
}

#[tokio::test]
async fn simultaneous_dials_leave_one_connection() {
    let (a, _a_events) = bind(config("regtest", 1));
    let (b, _b_events) = bind(config("regtest", 1));
    let (x, y) = tokio::join!(a.dial(b.local_addr(), None), b.dial(a.local_addr(), None));
    assert!(x.is_ok() || y.is_ok());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    assert_eq!(a.broadcast(&Message::Block(vec![5]), None), 1);
}

#[tokio::test]
async fn send_to_reaches_exactly_that_peers_service_subscriber() {
    let (a, _a_events) = bind(config("regtest", 1));
    let (b, mut b_events) = bind(config("regtest", 1));
    let (c, _c_events) = bind(config("regtest", 1));
    let mut b_raft = b.subscribe(Service::Raft);
    let mut c_raft = c.subscribe(Service::Raft);
    let mut b_training = b.subscribe(Service::Training);
    a.dial(b.local_addr(), None).await.expect("dial b");
    a.dial(c.local_addr(), None).await.expect("dial c");
    // Connection events reach every subscriber.
    let connected = next(&mut b_raft, |e| match e {
        NetEvent::Connected { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(connected, a.id());

    let raft = ServiceFrame {
        code: 0x30,
        payload: b"append entries".to_vec(),
    };
    a.send_to(b.id(), &Message::Service(raft.clone()))
        .expect("send_to b");
    let (from, frame) = next(&mut b_raft, |e| match e {
        NetEvent::Frame { peer, frame } => Some((peer, frame)),
        _ => None,
    })
    .await;
    assert_eq!((from, frame), (a.id(), raft));
    // A training frame goes to B's training subscriber, not to its Raft one.
    let blob = ServiceFrame {
        code: 0x55,
        payload: vec![7; 1000],
    };
    a.send_to(b.id(), &Message::Service(blob.clone()))
        .expect("send_to b");
    let got = next(&mut b_training, |e| match e {
        NetEvent::Frame { frame, .. } => Some(frame),
        _ => None,
    })
    .await;
    assert_eq!(got, blob);
    // A Block after them still reaches the chain: nothing was banned or reordered away.
    a.send_to(b.id(), &Message::Block(vec![4, 2]))
        .expect("block");
    let bytes = next(&mut b_events, |e| match e {
        NetEvent::Block { bytes, .. } => Some(bytes),
        NetEvent::Frame { .. } => panic!("a service frame reached the chain receiver"),
        _ => None,
    })
    .await;
    assert_eq!(bytes, vec![4, 2]);
    assert!(!b.is_banned(&a.id()));
    // C was sent nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(event) = c_raft.try_recv() {
        assert!(
            !matches!(event, NetEvent::Frame { .. }),
            "C received a frame sent to B"
        );
    }
    // Requests of a service range are answered by that service's subscriber.
    let asking = tokio::spawn({
        let a = a.clone();
        let b_id = b.id();
        async move {
            a.request(
                b_id,
                Message::Service(ServiceFrame {
                    code: 0x51,
                    payload: b"blob?".to_vec(),
                }),
            )
            .await
        }
    });
    let reply = next(&mut b_training, |e| match e {
        NetEvent::Request { reply, .. } => Some(reply),
        _ => None,
    })
    .await;
    let answer = ServiceFrame {
        code: 0x52,
        payload: vec![1; 100_000],
    };
    reply
        .send(vec![Message::Service(answer.clone())])
        .expect("reply");
    let got = asking.await.expect("join").expect("answer");
    assert_eq!(got, vec![Message::Service(answer)]);
    // Not connected: a clear error.
    let stranger = NodeId([3; 32]);
    assert!(a.send_to(stranger, &Message::Block(vec![1])).is_err());
}

#[tokio::test]
async fn service_frames_without_a_subscriber_are_dropped_but_unknown_types_ban() {
    let mut server_config = config("regtest", 1);
    server_config.ban = Duration::from_secs(60);
    let (server, mut events) = bind(server_config);
    let identity = Identity::generate().expect("identity");
    let client_id = identity.id();
    let (_endpoint, connection, mut send, _recv) =
        hand_client(&server, &mut events, &identity).await;
    // Raft and training frames with nobody subscribed: dropped, not a ban.
    for code in [0x30u8, 0x4f, 0x60] {
        let frame = Message::Service(ServiceFrame {
            code,
            payload: vec![1, 2, 3],
        });
        send.write_all(&frame::encode(&frame).expect("encode"))
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.is_banned(&client_id));
    assert_eq!(server.peers().len(), 1);
    // A type byte of no known range: banned.
    send.write_all(&[0x70, 0, 0, 0, 0]).await.expect("write");
    let reason = next(&mut events, |e| match e {
        NetEvent::Disconnected { peer, reason } if peer == client_id => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("unknown frame type"), "{reason}");
    assert!(server.is_banned(&client_id));
    drop(connection);
}

#[tokio::test]
async fn connect_failures_keep_their_cause() {
    use hashgrad::net::{ConnectFailure, NetError};
    use std::error::Error as _;
    let mut short = config("regtest", 1);
    short.request_timeout = Duration::from_millis(300);
    let (a, _events) = bind(short);
    // Port 0 cannot be dialed: quinn's own error stays the source.
    let error = a
        .dial(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .expect_err("port 0");
    assert!(
        matches!(
            &error,
            NetError::Connect(
                _,
                ConnectFailure::Start(quinn::ConnectError::InvalidRemoteAddress(_))
            )
        ),
        "{error:?}"
    );
    let source = error.source().expect("a source");
    assert!(
        source.downcast_ref::<ConnectFailure>().is_some(),
        "{source:?}"
    );
    // Nothing listening: the attempt times out, and says how long it waited.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let error = a
        .dial(silent.local_addr().expect("addr"), None)
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(error, NetError::ConnectTimeout(_, d) if d == Duration::from_millis(300)),
        "{error:?}"
    );
}
