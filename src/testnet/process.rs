//! One `hashgrad node` child process: started from its config file with stdout and stderr
//! appended to its log, its stdin held as a lifeline (the node stops when the pipe closes, so
//! children outlive no orchestrator, even one killed with -9), stopped gently or killed; under
//! libfaketime when its clock is faked.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::TestnetError;
use super::faketime::FakeClock;
use crate::api::Cookie;

/// A node child process (or the slot of one that is down).
#[derive(Debug)]
pub struct NodeProcess {
    /// Index of the node in the testnet (`n0` is 0).
    pub index: usize,
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Where in the log this start's output begins.
    log_offset: u64,
    /// The HTTP address from this start's `listening` line; `None` until it is printed.
    pub http: Option<SocketAddr>,
    /// This start's API token, read from the cookie the `listening` line names.
    pub token: Option<String>,
    /// The process's fake clock, when a clock fault may reach it.
    clock: Option<FakeClock>,
}

impl NodeProcess {
    /// A slot for node `index`, not yet started; `config` is its config file and `log` the file its
    /// output is appended to.
    pub fn new(index: usize, binary: &Path, config: &Path, log: &Path) -> NodeProcess {
        NodeProcess {
            index,
            binary: binary.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
            log_offset: 0,
            http: None,
            token: None,
            clock: None,
        }
    }

    /// Runs this node (from its next start) under `clock`.
    pub fn fake_clock(&mut self, clock: FakeClock) {
        self.clock = Some(clock);
    }

    /// Sets the rate of this node's fake clock (running or not); `false` when it has none.
    pub fn set_clock_rate(&mut self, rate: f64) -> Result<bool, TestnetError> {
        match &mut self.clock {
            Some(clock) => clock.set_rate(rate).map(|()| true),
            None => Ok(false),
        }
    }

    /// Starts the process (the node binds, then prints `listening … http=ADDR …`).
    pub fn start(&mut self) -> Result<(), TestnetError> {
        let path = self.log.clone();
        let io = |e| TestnetError::Io(path.clone(), e);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io)?;
        self.log_offset = log.metadata().map_err(io)?.len();
        let stderr = log.try_clone().map_err(io)?;
        let mut command = Command::new(&self.binary);
        if let Some(clock) = &mut self.clock {
            command.envs(clock.before_start()?);
        }
        let child = command
            .arg("node")
            .arg("--config")
            .arg(&self.config)
            .arg("--stop-on-stdin-eof")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TestnetError::Spawn(self.binary.clone(), e))?;
        self.child = Some(child);
        self.http = None;
        self.token = None;
        Ok(())
    }

    /// The OS process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether a child is held: started and not since killed, stopped or found exited.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Looks for this start's `listening` line; `Ok(true)` once the node serves HTTP. An
    /// exited child is an error carrying the log's last lines.
    pub fn poll_ready(&mut self) -> Result<bool, TestnetError> {
        if self.http.is_some() {
            return Ok(true);
        }
        if self.child.is_none() {
            return Ok(false);
        }
        let text = self.read_log_since_start();
        if let Some(line) = text.lines().find(|line| line.starts_with("listening ")) {
            let http = line
                .split_whitespace()
                .find_map(|part| part.strip_prefix("http="))
                .and_then(|addr| addr.parse::<SocketAddr>().ok());
            if let Some(http) = http {
                // Written before the node serves, so it is this start's.
                self.token = line
                    .split_once(" cookie=")
                    .and_then(|(_, path)| Cookie::read_file(Path::new(path)).ok())
                    .map(|cookie| cookie.token().to_string());
                self.http = Some(http);
                return Ok(true);
            }
        }
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            self.child = None;
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(TestnetError::NodeExited {
                node: self.index,
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(false)
    }

    fn read_log_since_start(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log)
            && file.seek(SeekFrom::Start(self.log_offset)).is_ok()
        {
            let _ = file.take(1 << 20).read_to_string(&mut text);
        }
        text
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self.http = None;
        self.token = None;
    }

    /// Closes the lifeline so the node stops itself; kills it if it is not gone within `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(child.stdin.take());
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        self.http = None;
        self.token = None;
    }
}
