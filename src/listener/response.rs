//! What a route gets and gives: a [`Request`] read in full and a
//! [`Response`], and the bytes a response becomes on the wire.

use super::parse::Head;

/// One request, read in full.
#[derive(Debug)]
pub struct Request {
    /// The request line and headers.
    pub head: Head,
    /// The body, within the listener's limit.
    pub body: Vec<u8>,
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An answer of `status` with `body` of `content_type`.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Response::new(status, "application/json", body)
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl AsRef<str>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.as_ref() }))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire, in one piece so they leave in as few segments
    /// as possible; no body for `HEAD`.
    pub fn encode(&self, keep_alive: bool, http10: bool, head_only: bool) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(160);
        let _ = write!(
            text,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        if !keep_alive {
            text.push_str("Connection: close\r\n");
        } else if http10 {
            text.push_str("Connection: keep-alive\r\n");
        }
        text.push_str("\r\n");
        let mut out = text.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_one_piece_with_its_length_and_connection() {
        let resp = Response::error(401, "no").with_header("WWW-Authenticate", "Bearer");
        let text = String::from_utf8(resp.encode(false, false, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("Content-Length: 14\r\n"), "{text}");
        assert!(text.contains("WWW-Authenticate: Bearer\r\nConnection: close\r\n\r\n"));
        assert!(text.ends_with("{\"error\":\"no\"}"));
        let head = String::from_utf8(resp.encode(true, true, true)).unwrap();
        assert!(head.ends_with("Connection: keep-alive\r\n\r\n"), "{head}");
    }
}
