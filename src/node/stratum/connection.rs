//! One Stratum connection's I/O: reads bounded lines from the socket, feeds them, every new
//! template and a one-second tick to its `Session`, writes what it answers, hands block shares
//! to the chain service and tallies every verdict. Closes on a line past the limit, a line
//! that takes too long to end (slowloris), silence past the idle timeout, a miner that does
//! not read what it is sent, a session that asks, or the node's shutdown (after sending
//! `client.reconnect`).
//!
//! Owns nothing but the socket; must not judge a share (the session does) or a block (the
//! chain does).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;

use super::super::ChainCommand;
use super::ledger::Ledger;
use crate::pow::Accepted;
use crate::stratum::message::{self, ErrorCode, MAX_LINE_BYTES};
use crate::stratum::session::{Action, Now, Offer, Session, SessionConfig, TICK};

/// How long a write may wait on a miner that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of a server shares.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub session: SessionConfig,
    pub idle_timeout: Duration,
    pub line_timeout: Duration,
    pub offers: watch::Receiver<Option<Offer>>,
    pub chain: mpsc::Sender<ChainCommand>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub stopped: watch::Receiver<bool>,
}

pub(super) fn now() -> Now {
    Now {
        at: Instant::now(),
        unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// Why a connection ended (logged at debug level).
#[derive(Debug)]
enum End {
    Eof,
    Io,
    LineTooLong,
    SlowLine,
    Idle,
    Session,
    Shutdown,
}

/// What one turn of a connection's loop leads to.
enum Step {
    Act(Vec<Action>),
    End(End, Option<String>),
}

/// Splits freshly read bytes into lines for the session; a line past `MAX_LINE_BYTES` (ended
/// or not) ends the connection with an error line.
fn read_lines(
    fresh: &[u8],
    buffer: &mut Vec<u8>,
    session: &mut Session,
    line_started: &mut Option<Instant>,
    last_line: &mut Instant,
) -> Step {
    let mut actions = Vec::new();
    let mut rest = fresh;
    let mut too_long = false;
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        if buffer.len() + at > MAX_LINE_BYTES {
            too_long = true;
            break;
        }
        buffer.extend_from_slice(&rest[..at]);
        actions.extend(session.on_line(buffer, now()));
        buffer.clear();
        rest = &rest[at + 1..];
        *last_line = Instant::now();
        *line_started = None;
    }
    if too_long || buffer.len() + rest.len() > MAX_LINE_BYTES {
        let line = message::error(
            &serde_json::Value::Null,
            ErrorCode::Other,
            &format!("line longer than {MAX_LINE_BYTES} bytes"),
        );
        return Step::End(End::LineTooLong, Some(line));
    }
    if !rest.is_empty() {
        buffer.extend_from_slice(rest);
        line_started.get_or_insert_with(Instant::now);
    }
    Step::Act(actions)
}

/// Serves one connection until it ends.
pub(super) async fn serve(stream: TcpStream, extranonce1: [u8; 4], mut shared: Shared) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut session = Session::new(shared.session, extranonce1, now());
    if let Some(offer) = shared.offers.borrow_and_update().clone() {
        session.on_template(offer);
    }
    let mut buffer: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    let mut last_line = Instant::now();
    // When the first byte of the line now buffered arrived.
    let mut line_started: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        let deadline = match line_started {
            Some(started) => (started + shared.line_timeout).min(last_line + shared.idle_timeout),
            None => last_line + shared.idle_timeout,
        };
        let step = tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(0) => Step::End(End::Eof, None),
                Ok(count) => {
                    read_lines(&chunk[..count], &mut buffer, &mut session, &mut line_started, &mut last_line)
                }
                Err(_) => Step::End(End::Io, None),
            },
            changed = shared.offers.changed() => match changed {
                // The chain service stopped: the node is shutting down.
                Err(_) => Step::End(End::Shutdown, Some(reconnect())),
                Ok(()) => {
                    let offer = shared.offers.borrow_and_update().clone();
                    Step::Act(offer.map(|offer| session.on_template(offer)).unwrap_or_default())
                }
            },
            _ = tick.tick() => Step::Act(session.on_tick(now())),
            _ = tokio::time::sleep_until(deadline.into()) => {
                Step::End(if line_started.is_some() { End::SlowLine } else { End::Idle }, None)
            }
            _ = shared.stopped.wait_for(|stopped| *stopped) => {
                Step::End(End::Shutdown, Some(reconnect()))
            }
        };
        match step {
            Step::Act(actions) => {
                if !act(actions, &mut writer, &shared).await {
                    break End::Session;
                }
            }
            Step::End(end, last) => {
                if let Some(line) = last {
                    let _ = write(&mut writer, &line).await;
                }
                break end;
            }
        }
    };
    debug!(?peer, ?end, "stratum connection closed");
}

/// `client.reconnect` with no arguments: come back to the same address.
fn reconnect() -> String {
    message::notification("client.reconnect", serde_json::json!([]))
}

async fn write(writer: &mut OwnedWriteHalf, line: &str) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(line.as_bytes())).await,
        Ok(Ok(()))
    )
}

/// Carries out a session's actions; false when the connection must close.
async fn act(actions: Vec<Action>, writer: &mut OwnedWriteHalf, shared: &Shared) -> bool {
    let mut out = String::new();
    let mut open = true;
    for action in actions {
        match action {
            Action::Send(line) => out.push_str(&line),
            Action::Share {
                worker,
                verdict,
                difficulty,
            } => {
                if let Ok(mut ledger) = shared.ledger.lock() {
                    ledger.share(&worker, verdict, difficulty, Instant::now());
                }
            }
            Action::Block { block, worker } => {
                let (reply, answer) = oneshot::channel();
                if shared
                    .chain
                    .send(ChainCommand::SubmitBlock(*block, reply))
                    .await
                    .is_err()
                {
                    open = false;
                    continue;
                }
                match answer.await {
                    Ok(Ok(Accepted::NewTip { .. } | Accepted::SideBranch)) => {
                        if let Ok(mut ledger) = shared.ledger.lock() {
                            ledger.block_found(&worker, Instant::now());
                        }
                    }
                    Ok(other) => debug!(?other, %worker, "a stratum block was not taken"),
                    Err(_) => open = false,
                }
            }
            Action::Close(reason) => {
                debug!(?reason, "stratum session asks to close");
                open = false;
            }
        }
    }
    if !out.is_empty() && !write(writer, &out).await {
        return false;
    }
    open
}
