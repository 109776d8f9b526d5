//! The node's API token (bitcoind's `.cookie` habit): at each start the node writes a fresh
//! random token to `DATA_DIR/.cookie` (mode 0600), and every request that can change something
//! — any method but `GET` and `HEAD` — must carry it as `Authorization: Bearer <token>`.
//!
//! Owns the cookie file and the check (`require_token`, a layer on the API's one router, so a
//! route added later is covered without a word). Reads are open: `/status` and `/metrics` are
//! what monitoring scrapes. Must not know which routes exist.

use std::io::Write;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;

/// The cookie's file name inside the data dir.
pub const COOKIE_FILE: &str = ".cookie";

/// Random bytes in a token (written as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// Why the cookie could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Writing the cookie file failed.
    #[error("cannot write the API cookie {0}: {1}")]
    Write(PathBuf, #[source] std::io::Error),
    /// Reading the cookie file failed (is the node running with this data dir?).
    #[error("cannot read the API cookie {0} (is a node running on this data dir?): {1}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The cookie file holds something other than a token.
    #[error("the API cookie {0} does not hold a token of {TOKEN_BYTES} hex-encoded bytes")]
    Malformed(PathBuf),
}

/// The token that authorizes changes through a node's API.
#[derive(Clone)]
pub struct Cookie {
    token: String,
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in logs.
        f.write_str("Cookie(..)")
    }
}

impl Cookie {
    /// A fresh random token, written to `data_dir/.cookie` with mode 0600 (through a
    /// temporary file and a rename, so a reader never sees half a token).
    pub fn create(data_dir: &Path) -> Result<Cookie, AuthError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let cookie = Cookie {
            token: hex::encode(bytes),
        };
        let path = data_dir.join(COOKIE_FILE);
        let partial = data_dir.join(format!("{COOKIE_FILE}.partial"));
        let failed = |e| AuthError::Write(path.clone(), e);
        let _ = std::fs::remove_file(&partial);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial).map_err(failed)?;
        file.write_all(cookie.token.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&partial, &path).map_err(failed)?;
        Ok(cookie)
    }

    /// The token a running node wrote to `data_dir/.cookie`.
    pub fn read(data_dir: &Path) -> Result<Cookie, AuthError> {
        Cookie::read_file(&data_dir.join(COOKIE_FILE))
    }

    /// The token in a cookie file (the path `hashgrad node`'s `listening` line names).
    pub fn read_file(path: &Path) -> Result<Cookie, AuthError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| AuthError::Read(path.to_path_buf(), e))?;
        let token = text.trim();
        if token.len() != 2 * TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed(path.to_path_buf()));
        }
        Ok(Cookie {
            token: token.to_string(),
        })
    }

    /// The token, for a client's `Authorization: Bearer` header.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What an `Authorization` header (if any) proves.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Verdict {
        let Some(value) = authorization else {
            return Verdict::Missing;
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|text| text.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if same_bytes(token.as_bytes(), self.token.as_bytes()) => Verdict::Granted,
            _ => Verdict::Wrong,
        }
    }
}

/// The outcome of checking a request's `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The header carries this node's token.
    Granted,
    /// No `Authorization` header: 401.
    Missing,
    /// A header that is not `Bearer <this node's token>`: 403.
    Wrong,
}

/// Compares in time that depends on the lengths only, so the token cannot be guessed a byte at
/// a time from response times.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a method only reads (and so needs no token).
fn reads_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// The router layer: lets reads through, and any other request only with the token.
pub async fn require_token(State(cookie): State<Cookie>, request: Request, next: Next) -> Response {
    if reads_only(request.method()) {
        return next.run(request).await;
    }
    match cookie.check(request.headers().get(header::AUTHORIZATION)) {
        Verdict::Granted => next.run(request).await,
        Verdict::Missing => {
            let mut response = super::error(
                StatusCode::UNAUTHORIZED,
                format!(
                    "this request changes the node and needs its token: send \
                     `Authorization: Bearer <token>`, the token is in DATA_DIR/{COOKIE_FILE}"
                ),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hashgrad\""),
            );
            response
        }
        Verdict::Wrong => super::error(
            StatusCode::FORBIDDEN,
            format!(
                "the bearer token is not this node's: it changes at every start, read \
                 DATA_DIR/{COOKIE_FILE} again"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_cookie_reads_back_and_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let cookie = Cookie::create(dir.path()).expect("create");
        let read = Cookie::read(dir.path()).expect("read");
        assert_eq!(cookie.token(), read.token());
        assert_eq!(cookie.token().len(), 2 * TOKEN_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(COOKIE_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A restart writes a new token over the old one.
        let again = Cookie::create(dir.path()).expect("create again");
        assert_ne!(again.token(), cookie.token());
        assert_eq!(
            Cookie::read(dir.path()).expect("read").token(),
            again.token()
        );
    }

    #[test]
    fn only_the_exact_bearer_token_is_granted() {
        let dir = tempfile::tempdir().expect("dir");
        let cookie = Cookie::create(dir.path()).expect("create");
        let header = |text: &str| HeaderValue::from_str(text).expect("header");
        let bearer = format!("Bearer {}", cookie.token());
        assert_eq!(cookie.check(Some(&header(&bearer))), Verdict::Granted);
        assert_eq!(cookie.check(None), Verdict::Missing);
        assert_eq!(cookie.check(Some(&header(cookie.token()))), Verdict::Wrong);
        assert_eq!(cookie.check(Some(&header("Bearer "))), Verdict::Wrong);
        let mut flipped = cookie.token().to_string().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        let flipped = format!("Bearer {}", String::from_utf8(flipped).expect("ascii"));
        assert_eq!(cookie.check(Some(&header(&flipped))), Verdict::Wrong);
        let longer = format!("{bearer}0");
        assert_eq!(cookie.check(Some(&header(&longer))), Verdict::Wrong);
    }

    #[test]
    fn a_malformed_cookie_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(COOKIE_FILE), "not a token").expect("write");
        assert!(matches!(
            Cookie::read(dir.path()),
            Err(AuthError::Malformed(_))
        ));
        let missing = tempfile::tempdir().expect("dir");
        assert!(matches!(
            Cookie::read(missing.path()),
            Err(AuthError::Read(..))
        ));
    }
}
