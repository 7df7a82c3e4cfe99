//! Request bodies: read with a size limit (also when chunked), parsed as a JSON object, and
//! validated field by field so that every problem is reported at once.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::HeaderMap;
use serde_json::{Map, Value};

use super::BodyStream;
use crate::error::{Error, Result};

/// JSON bodies of the API (SPEC 2.3).
pub const JSON_LIMIT: usize = 64 * 1024;

/// A body must have arrived this long after its headers: slow senders cannot hold a task.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Reads the whole body, refusing more than `limit` bytes by `Content-Length` or as it streams,
/// and bodies that take longer than `BODY_TIMEOUT`.
pub async fn read_limited(headers: &HeaderMap, stream: BodyStream, limit: usize) -> Result<Bytes> {
    tokio::time::timeout(BODY_TIMEOUT, read_all(headers, stream, limit))
        .await
        .map_err(|_| Error::RequestTimeout)?
}

async fn read_all(headers: &HeaderMap, mut stream: BodyStream, limit: usize) -> Result<Bytes> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= (limit + DRAIN_EXTRA) as u64) {
            drain(stream, limit + DRAIN_EXTRA).await;
        }
        return Err(Error::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::invalid("body: could not be read"))?;
        if buf.len() + chunk.len() > limit {
            drain(
                stream,
                (limit + DRAIN_EXTRA).saturating_sub(buf.len() + chunk.len()),
            )
            .await;
            return Err(Error::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// How far past the limit a too-large body is still read (and thrown away) before the 413.
const DRAIN_EXTRA: usize = 1024 * 1024;

/// Reads and discards the rest of a body that is only somewhat too large, for at most a
/// second. A server that answers and closes while the client is still sending makes the
/// client's kernel drop the answer (a reset or a broken pipe instead of the 413); reading the
/// rest lets an ordinary client see why it was refused. Bigger or slower bodies are cut off.
async fn drain(mut stream: BodyStream, mut budget: usize) {
    let rest = async {
        while let Some(Ok(chunk)) = stream.next().await {
            if chunk.len() > budget {
                return;
            }
            budget -= chunk.len();
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), rest).await;
}

/// A JSON number that is a whole number, as JSON means it: `1155` and `1155.0` alike.
pub fn whole_number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// A JSON object body whose fields are taken one by one; what is left is unknown.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<String>,
}

impl Fields {
    pub fn parse(bytes: &[u8]) -> Result<Fields> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::invalid("body: must be a JSON object"));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Fields {
                map,
                errors: Vec::new(),
            }),
            Ok(_) => Err(Error::invalid("body: must be a JSON object")),
            Err(e) => Err(Error::invalid(format!(
                "body: malformed JSON at line {} column {}",
                e.line(),
                e.column()
            ))),
        }
    }

    pub fn error(&mut self, e: impl Into<String>) {
        self.errors.push(e.into());
    }

    /// Takes a field as it is, whatever its type.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    /// A boolean field: absent → `None`; present but not a boolean → an error.
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.map.remove(name) {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.errors.push(format!("{name}: must be true or false"));
                None
            }
        }
    }

    /// A string field: absent → `None`; present but not a string → an error.
    pub fn string(&mut self, name: &str) -> Option<String> {
        match self.map.remove(name) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errors.push(format!("{name}: must be a string"));
                None
            }
        }
    }

    /// A required string field.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        let present = self.map.contains_key(name);
        let value = self.string(name);
        if !present {
            self.errors.push(format!("{name}: is required"));
        }
        value
    }

    /// A field that may be set to a string or cleared with `null`: absent → `None`,
    /// `null` → `Some(None)`.
    pub fn nullable_string(&mut self, name: &str) -> Option<Option<String>> {
        match self.map.remove(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.errors
                    .push(format!("{name}: must be a string or null"));
                None
            }
        }
    }

    /// Ends the reading: unknown fields and every problem found become one 400.
    pub fn finish(mut self) -> Result<()> {
        let mut unknown: Vec<String> = self.map.keys().cloned().collect();
        unknown.sort();
        self.errors
            .extend(unknown.into_iter().map(|k| format!("{k}: unknown field")));
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_all(self.errors))
        }
    }

    /// Adds the problems of a later validation step before finishing.
    pub fn finish_with(mut self, more: Vec<String>) -> Result<()> {
        self.errors.extend(more);
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem() {
        let mut f = Fields::parse(br#"{"email": 3, "extra": true}"#).unwrap();
        assert_eq!(f.string("email"), None);
        assert_eq!(f.required_string("password"), None);
        let err = f.finish().unwrap_err();
        assert_eq!(
            err.field_errors(),
            [
                "email: must be a string",
                "password: is required",
                "extra: unknown field"
            ]
        );
    }

    #[test]
    fn malformed_and_non_object_bodies() {
        assert_eq!(
            Fields::parse(b"{nope").err().unwrap().field_errors(),
            ["body: malformed JSON at line 1 column 2"]
        );
        assert_eq!(
            Fields::parse(b"[1]").err().unwrap().field_errors(),
            ["body: must be a JSON object"]
        );
        assert_eq!(
            Fields::parse(b"").err().unwrap().field_errors(),
            ["body: must be a JSON object"]
        );
    }
}
