//! Stratum v1's wire form: one JSON-RPC object per `\n`-terminated line. Decodes a line into a
//! typed `Incoming` (a request, a notification or a response) with its size bounded before
//! parsing, and writes requests, responses, errors and notifications as lines.
//!
//! Owns the JSON of the protocol (the protocol is JSON, so this is its codec); must not decide
//! what a message means (the sessions do) or touch a socket.

use serde_json::{Value, json};

use super::StratumError;

/// Longest line either side accepts (a `mining.notify` with a deep merkle branch is about
/// 3 KiB; anything near this bound is an attack or a bug).
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most parameters a request may carry.
pub const MAX_PARAMS: usize = 16;

/// Stratum's error codes (the numbers every pool and miner uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 20: anything else (bad parameters, unknown method, rate limit).
    Other,
    /// 21: the job is unknown or stale.
    JobNotFound,
    /// 22: this share was already submitted.
    Duplicate,
    /// 23: the share's hash does not meet the share target.
    LowDifficulty,
    /// 24: the worker is not authorized.
    Unauthorized,
    /// 25: `mining.subscribe` has not been sent.
    NotSubscribed,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Other => 20,
            ErrorCode::JobNotFound => 21,
            ErrorCode::Duplicate => 22,
            ErrorCode::LowDifficulty => 23,
            ErrorCode::Unauthorized => 24,
            ErrorCode::NotSubscribed => 25,
        }
    }

    /// The code a number names (unknown numbers are `Other`).
    pub fn from_code(code: i64) -> ErrorCode {
        match code {
            21 => ErrorCode::JobNotFound,
            22 => ErrorCode::Duplicate,
            23 => ErrorCode::LowDifficulty,
            24 => ErrorCode::Unauthorized,
            25 => ErrorCode::NotSubscribed,
            _ => ErrorCode::Other,
        }
    }
}

/// A JSON-RPC id as sent (a number, a string or null); echoed back unchanged.
pub type RequestId = Value;

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A method call (`id` not null) or a notification (`id` null or absent).
    Call {
        /// The id to answer with (`Value::Null` for notifications).
        id: RequestId,
        /// The method name, e.g. `mining.submit`.
        method: String,
        /// The positional parameters (at most `MAX_PARAMS`).
        params: Vec<Value>,
    },
    /// An answer to a call this side made.
    Response {
        /// The id of the call it answers.
        id: RequestId,
        /// The result (`Value::Null` when the call failed).
        result: Value,
        /// The error code and message, when the call failed.
        error: Option<(i64, String)>,
    },
}

/// Decodes one line (without or with its `\n`); never panics, refuses more than
/// `MAX_LINE_BYTES` before parsing.
pub fn decode(line: &[u8]) -> Result<Incoming, StratumError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(StratumError::LineTooLong {
            len: line.len(),
            max: MAX_LINE_BYTES,
        });
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|e| StratumError::Malformed(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(StratumError::Malformed("a message is a JSON object".into()));
    };
    let id = object.remove("id").unwrap_or(Value::Null);
    if let Some(method) = object.remove("method") {
        let Value::String(method) = method else {
            return Err(StratumError::Malformed("`method` is not a string".into()));
        };
        let params = match object.remove("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(params)) if params.len() <= MAX_PARAMS => params,
            Some(Value::Array(params)) => {
                return Err(StratumError::Malformed(format!(
                    "{} params, more than {MAX_PARAMS}",
                    params.len()
                )));
            }
            // Some pools send an object; keep it as one positional parameter.
            Some(other @ Value::Object(_)) => vec![other],
            Some(_) => return Err(StratumError::Malformed("`params` is not a list".into())),
        };
        return Ok(Incoming::Call { id, method, params });
    }
    let result = object.remove("result").unwrap_or(Value::Null);
    let error = match object.remove("error") {
        None | Some(Value::Null) => None,
        Some(error) => Some(parse_error(&error)),
    };
    if result.is_null() && error.is_none() && !object.is_empty() {
        return Err(StratumError::Malformed(
            "neither a method call nor a response".into(),
        ));
    }
    Ok(Incoming::Response { id, result, error })
}

/// `[code, "message", traceback]` (Stratum) or `{"code":…, "message":…}` (JSON-RPC 2).
fn parse_error(error: &Value) -> (i64, String) {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    match error {
        Value::Array(parts) => (
            parts.first().and_then(Value::as_i64).unwrap_or(20),
            text(parts.get(1)),
        ),
        Value::Object(fields) => (
            fields.get("code").and_then(Value::as_i64).unwrap_or(20),
            text(fields.get("message")),
        ),
        other => (20, other.to_string()),
    }
}

fn line(value: &Value) -> String {
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// A successful response line.
pub fn result(id: &RequestId, result: Value) -> String {
    line(&json!({ "id": id, "result": result, "error": null }))
}

/// An error response line: `[code, message, null]` as Stratum pools send it.
pub fn error(id: &RequestId, code: ErrorCode, message: &str) -> String {
    line(&json!({ "id": id, "result": null, "error": [code.code(), message, null] }))
}

/// A notification line (`id` null): `mining.notify`, `mining.set_difficulty`, `client.reconnect`.
pub fn notification(method: &str, params: Value) -> String {
    line(&json!({ "id": null, "method": method, "params": params }))
}

/// A request line with a numeric id.
pub fn request(id: u64, method: &str, params: Value) -> String {
    line(&json!({ "id": id, "method": method, "params": params }))
}

/// The string parameter at `index`, or why not.
pub fn string_param<'a>(
    params: &'a [Value],
    index: usize,
    what: &'static str,
) -> Result<&'a str, StratumError> {
    params
        .get(index)
        .and_then(Value::as_str)
        .ok_or(StratumError::BadParam(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_responses_and_bounds() {
        let call = decode(br#"{"id":1,"method":"mining.subscribe","params":["x/1"]}"#);
        assert_eq!(
            call.ok(),
            Some(Incoming::Call {
                id: json!(1),
                method: "mining.subscribe".into(),
                params: vec![json!("x/1")],
            })
        );
        let answer = decode(br#"{"id":4,"result":null,"error":[23,"Low difficulty",null]}"#);
        assert_eq!(
            answer.ok(),
            Some(Incoming::Response {
                id: json!(4),
                result: Value::Null,
                error: Some((23, "Low difficulty".into())),
            })
        );
        assert!(matches!(
            decode(b"{\"id\":1,"),
            Err(StratumError::Malformed(_))
        ));
        assert!(matches!(decode(b"[1,2]"), Err(StratumError::Malformed(_))));
        assert!(matches!(
            decode(br#"{"id":1,"method":7}"#),
            Err(StratumError::Malformed(_))
        ));
        let long = vec![b' '; MAX_LINE_BYTES + 1];
        assert!(matches!(
            decode(&long),
            Err(StratumError::LineTooLong { .. })
        ));
        let many = format!(
            r#"{{"id":1,"method":"m","params":[{}]}}"#,
            vec!["1"; MAX_PARAMS + 1].join(",")
        );
        assert!(matches!(
            decode(many.as_bytes()),
            Err(StratumError::Malformed(_))
        ));
    }

    #[test]
    fn lines_are_one_json_object_each() {
        let text = error(&json!(3), ErrorCode::Duplicate, "Duplicate share");
        assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
        assert_eq!(
            decode(text.as_bytes()).ok(),
            Some(Incoming::Response {
                id: json!(3),
                result: Value::Null,
                error: Some((22, "Duplicate share".into())),
            })
        );
        for code in [20, 21, 22, 23, 24, 25] {
            assert_eq!(ErrorCode::from_code(code).code(), code);
        }
    }
}
