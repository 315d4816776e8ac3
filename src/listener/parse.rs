//! HTTP/1.1 requests from bytes, with bounds: where a head ends, what it
//! says, how its body is framed, and chunked bodies. Pure functions over
//! byte slices, so any I/O model can feed them whatever bytes it has.

use std::fmt;

/// A request's line and headers.
#[derive(Debug, Clone)]
pub struct Head {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names and values as sent.
    pub headers: Vec<(String, String)>,
    /// Whether the request line said `HTTP/1.0`.
    pub http10: bool,
}

impl Head {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query without the `?`, or empty.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// Whether the client asked to keep the connection open.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("Connection").unwrap_or("").to_ascii_lowercase();
        if self.http10 {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        }
    }

    /// Whether the client waits for `100 Continue` before it sends the body.
    pub fn expects_continue(&self) -> Result<bool, ParseError> {
        match self.header("Expect") {
            None => Ok(false),
            Some(e) if e.eq_ignore_ascii_case("100-continue") => Ok(true),
            Some(_) => Err(ParseError::UnsupportedExpect),
        }
    }
}

/// Why a request was refused before it reached a route.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The request line plus headers passed the head limit.
    HeadTooLarge,
    /// More header lines than allowed.
    TooManyHeaders,
    /// The head holds bytes that are not UTF-8.
    NotUtf8,
    /// Not `METHOD TARGET VERSION`.
    MalformedRequestLine,
    /// An HTTP version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// A method that is not upper-case letters.
    MalformedMethod,
    /// A target that does not start with `/`.
    MalformedTarget,
    /// A header line without a colon.
    MalformedHeaderLine,
    /// A header name that is empty or holds white space.
    MalformedHeaderName,
    /// A `Content-Length` that is not a number.
    MalformedContentLength,
    /// Two `Content-Length` headers that disagree.
    ConflictingContentLength,
    /// A `Transfer-Encoding` other than `chunked`.
    UnsupportedTransferEncoding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndChunked,
    /// A body larger than the limit, in bytes.
    BodyTooLarge(usize),
    /// An `Expect` other than `100-continue`.
    UnsupportedExpect,
    /// A chunk size line that is not hexadecimal, too long, or a chunk not
    /// followed by CRLF.
    MalformedChunk,
}

impl ParseError {
    /// The status code that answers it.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::UnsupportedVersion => 505,
            ParseError::UnsupportedTransferEncoding => 501,
            ParseError::BodyTooLarge(_) => 413,
            ParseError::UnsupportedExpect => 417,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::HeadTooLarge => f.write_str("request head too large"),
            ParseError::TooManyHeaders => f.write_str("too many headers"),
            ParseError::NotUtf8 => f.write_str("request head is not UTF-8"),
            ParseError::MalformedRequestLine => f.write_str("malformed request line"),
            ParseError::UnsupportedVersion => f.write_str("only HTTP/1.0 and HTTP/1.1"),
            ParseError::MalformedMethod => f.write_str("malformed method"),
            ParseError::MalformedTarget => f.write_str("request target must start with /"),
            ParseError::MalformedHeaderLine => f.write_str("malformed header line"),
            ParseError::MalformedHeaderName => f.write_str("malformed header name"),
            ParseError::MalformedContentLength => f.write_str("malformed Content-Length"),
            ParseError::ConflictingContentLength => {
                f.write_str("conflicting Content-Length headers")
            }
            ParseError::UnsupportedTransferEncoding => {
                f.write_str("only chunked Transfer-Encoding is supported")
            }
            ParseError::LengthAndChunked => {
                f.write_str("both Content-Length and Transfer-Encoding")
            }
            ParseError::BodyTooLarge(limit) => {
                write!(f, "request body larger than {}", Size(*limit))
            }
            ParseError::UnsupportedExpect => f.write_str("unsupported Expect"),
            ParseError::MalformedChunk => f.write_str("malformed chunk size"),
        }
    }
}

/// A byte count as people write it: `1 MiB`, `4 KiB`, `100 bytes`.
struct Size(usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{} MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{} KiB", n >> 10),
            n => write!(f, "{n} bytes"),
        }
    }
}

/// Finds where a head ends, scanning each byte once however the bytes
/// arrive (a client sending one byte at a time costs no rescans).
#[derive(Debug, Default)]
pub struct HeadScanner {
    /// The next byte to look at.
    pos: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Whether a non-blank line was seen (blank lines before the request
    /// line are skipped, as RFC 9112 allows).
    started: bool,
}

impl HeadScanner {
    /// The length of the head (through its blank line) in `buf`, which must
    /// start with the bytes given before; `None` while it is incomplete.
    pub fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        while let Some(i) = buf.get(self.pos..)?.iter().position(|&b| b == b'\n') {
            let end = self.pos + i;
            let line = &buf[self.line_start..end];
            let blank = line.is_empty() || line == b"\r";
            self.pos = end + 1;
            self.line_start = self.pos;
            if !blank {
                self.started = true;
            } else if self.started {
                return Some(self.pos);
            }
        }
        self.pos = buf.len();
        None
    }
}

/// Parses a complete head (as delimited by [`HeadScanner`]).
pub fn parse_head(bytes: &[u8], max_headers: usize) -> Result<Head, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or(ParseError::MalformedRequestLine)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::MalformedRequestLine);
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(ParseError::UnsupportedVersion),
        _ => return Err(ParseError::MalformedRequestLine),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::MalformedMethod);
    }
    if !target.starts_with('/') {
        return Err(ParseError::MalformedTarget);
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        if headers.len() >= max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::MalformedHeaderLine)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::MalformedHeaderName);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        http10,
    })
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 when no body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    /// The framing `head` declares, refused when it is unclear or larger than `max_body`.
    pub fn of(head: &Head, max_body: usize) -> Result<Framing, ParseError> {
        let mut length: Option<usize> = None;
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case("Content-Length") {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::MalformedContentLength);
                }
                // All digits: only an overflow fails, and that is too large.
                let n = value.parse::<usize>().unwrap_or(usize::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(ParseError::ConflictingContentLength);
                }
                length = Some(n);
            }
        }
        let chunked = match head.header("Transfer-Encoding") {
            None => false,
            Some(te) if te.eq_ignore_ascii_case("chunked") => true,
            Some(_) => return Err(ParseError::UnsupportedTransferEncoding),
        };
        match (chunked, length) {
            (true, Some(_)) => Err(ParseError::LengthAndChunked),
            (true, None) => Ok(Framing::Chunked),
            (false, Some(n)) if n > max_body => Err(ParseError::BodyTooLarge(max_body)),
            (false, n) => Ok(Framing::Length(n.unwrap_or(0))),
        }
    }

    /// Whether there is a body to read.
    pub fn has_body(self) -> bool {
        self != Framing::Length(0)
    }
}

/// Decodes a chunked body from whatever bytes arrive, holding at most
/// `max_body` bytes of body and `line_limit` bytes of size and trailer lines.
#[derive(Debug)]
pub struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
    line_budget: usize,
    max_body: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    Size,
    /// This many bytes of chunk data to go.
    Data(usize),
    /// The CRLF after a chunk's data; true once the CR was seen.
    DataEnd(bool),
    /// Trailer lines, up to a blank one.
    Trailers,
    Done,
}

impl Chunked {
    /// A decoder for one body.
    pub fn new(max_body: usize, line_limit: usize) -> Chunked {
        Chunked {
            state: ChunkState::Size,
            line: Vec::new(),
            line_budget: line_limit,
            max_body,
        }
    }

    /// Whether the last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input` into `body`; returns how many bytes of `input`
    /// it used (all of them unless the body ended).
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ParseError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let n = left.min(rest.len());
                    body.extend_from_slice(&rest[..n]);
                    used += n;
                    self.state = match left - n {
                        0 => ChunkState::DataEnd(false),
                        more => ChunkState::Data(more),
                    };
                }
                ChunkState::DataEnd(cr) => {
                    self.state = match (cr, rest[0]) {
                        (false, b'\r') => ChunkState::DataEnd(true),
                        (true, b'\n') => ChunkState::Size,
                        _ => return Err(ParseError::MalformedChunk),
                    };
                    used += 1;
                }
                ChunkState::Size | ChunkState::Trailers => {
                    let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                        self.take_line(rest)?;
                        used += rest.len();
                        continue;
                    };
                    self.take_line(&rest[..i])?;
                    used += i + 1;
                    self.end_line(body.len())?;
                }
            }
        }
        Ok(used)
    }

    fn take_line(&mut self, part: &[u8]) -> Result<(), ParseError> {
        self.line_budget = self
            .line_budget
            .checked_sub(part.len())
            .ok_or(ParseError::MalformedChunk)?;
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn end_line(&mut self, body_len: usize) -> Result<(), ParseError> {
        let line = std::mem::take(&mut self.line);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        self.state = match self.state {
            ChunkState::Trailers if line.is_empty() => ChunkState::Done,
            ChunkState::Trailers => ChunkState::Trailers,
            _ => {
                let text = std::str::from_utf8(line).map_err(|_| ParseError::MalformedChunk)?;
                let size_text = text.split(';').next().unwrap_or("").trim();
                let size =
                    usize::from_str_radix(size_text, 16).map_err(|_| ParseError::MalformedChunk)?;
                if size == 0 {
                    ChunkState::Trailers
                } else if body_len.saturating_add(size) > self.max_body {
                    return Err(ParseError::BodyTooLarge(self.max_body));
                } else {
                    ChunkState::Data(size)
                }
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, ParseError> {
        parse_head(text.as_bytes(), 100)
    }

    #[test]
    fn the_scanner_finds_the_end_however_the_bytes_arrive() {
        let text = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nnext";
        let mut whole = HeadScanner::default();
        assert_eq!(whole.scan(text), Some(text.len() - 4));
        let mut bytewise = HeadScanner::default();
        let ends: Vec<_> = (1..=text.len())
            .filter_map(|n| bytewise.scan(&text[..n]))
            .collect();
        assert_eq!(ends.first(), Some(&(text.len() - 4)));
        assert_eq!(HeadScanner::default().scan(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(HeadScanner::default().scan(b"GET / HTTP/1.1\r\nX: y"), None);
    }

    #[test]
    fn a_head_gives_method_target_headers_and_version() {
        let h = head("GET /tasks?limit=2 HTTP/1.0\r\nConnection: keep-alive\r\nA:  b \r\n\r\n")
            .unwrap();
        assert_eq!(
            (h.method.as_str(), h.path(), h.query()),
            ("GET", "/tasks", "limit=2")
        );
        assert_eq!(h.header("a"), Some("b"));
        assert!(h.http10 && h.keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .keep_alive());
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        let cases = [
            ("GET\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("get / HTTP/1.1\r\n\r\n", 400),
            ("GET x HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA B: c\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            assert_eq!(head(text).unwrap_err().status(), status, "{text:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(101));
        assert_eq!(head(&many).unwrap_err(), ParseError::TooManyHeaders);
        assert_eq!(
            parse_head(b"GET /\xff HTTP/1.1\r\n\r\n", 1).unwrap_err(),
            ParseError::NotUtf8
        );
    }

    #[test]
    fn framing_follows_the_headers_and_the_limit() {
        let framing = |headers: &str| {
            let h = head(&format!("POST / HTTP/1.1\r\n{headers}\r\n")).unwrap();
            Framing::of(&h, 1 << 20)
        };
        assert_eq!(framing(""), Ok(Framing::Length(0)));
        assert_eq!(framing("Content-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(
            framing("Transfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Content-Length: 99999999999999999999999\r\n"),
            Err(ParseError::BodyTooLarge(1 << 20))
        );
        assert_eq!(
            framing("Content-Length: 2000000\r\n")
                .unwrap_err()
                .to_string(),
            "request body larger than 1 MiB"
        );
        assert_eq!(framing("Content-Length: -1\r\n").unwrap_err().status(), 400);
        assert_eq!(
            framing("Content-Length: 1\r\nContent-Length: 2\r\n"),
            Err(ParseError::ConflictingContentLength)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip\r\n").unwrap_err().status(),
            501
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\nContent-Length: 1\r\n"),
            Err(ParseError::LengthAndChunked)
        );
    }

    #[test]
    fn chunked_bodies_decode_from_any_split() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let mut dec = Chunked::new(100, 100);
            let mut body = Vec::new();
            let first = dec.feed(&wire[..split], &mut body).unwrap();
            let second = dec.feed(&wire[first..], &mut body).unwrap();
            assert!(dec.is_done(), "split at {split}");
            assert_eq!(body, b"Wikipedia");
            assert_eq!(&wire[first + second..], b"NEXT", "split at {split}");
        }
    }

    #[test]
    fn chunked_bodies_keep_their_bounds() {
        let mut body = Vec::new();
        let too_big = Chunked::new(8, 100).feed(b"9\r\n", &mut body);
        assert_eq!(too_big, Err(ParseError::BodyTooLarge(8)));
        let long_line = Chunked::new(8, 4).feed(b"00000001\r\n", &mut body);
        assert_eq!(long_line, Err(ParseError::MalformedChunk));
        let no_crlf = Chunked::new(8, 100).feed(b"1\r\nab", &mut body);
        assert_eq!(no_crlf, Err(ParseError::MalformedChunk));
        let not_hex = Chunked::new(8, 100).feed(b"zz\r\n", &mut body);
        assert_eq!(not_hex, Err(ParseError::MalformedChunk));
    }
}
