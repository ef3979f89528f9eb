//! Just enough HTTP/1.1 for Kubernetes clients, over a blocking `TcpStream`: request
//! heads (bounded in size), query strings, plain responses with `Content-Length`, and
//! chunked responses for watches. Keep-alive is the HTTP/1.1 default; `Connection: close`
//! and HTTP/1.0 end the connection after the response.
//!
//! Nothing here trusts the peer: sizes are bounded, bytes that are not UTF-8 or not
//! HTTP are a [`HttpError`], never a panic.

use std::io::{self, BufRead, Write};

/// Largest request head (request line plus headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read (a Pod to create).
const MAX_BODY: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connection closed")]
    Closed,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request too large")]
    TooLarge,
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    /// Percent-decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub http10: bool,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").map(str::to_ascii_lowercase);
        match connection.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
            Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => !self.http10,
        }
    }
}

/// Reads one line (without its `\r\n`), charging its length to `budget`.
fn read_line<R: BufRead>(reader: &mut R, budget: &mut usize) -> Result<String, HttpError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(if line.is_empty() {
                HttpError::Closed
            } else {
                HttpError::Malformed("connection closed inside the request head")
            });
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > *budget {
            return Err(HttpError::TooLarge);
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if done {
            break;
        }
    }
    *budget -= line.len();
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| HttpError::Malformed("request head is not UTF-8"))
}

/// Reads one request: its head, and its body when it has one.
pub fn read_request<R: BufRead>(reader: &mut R) -> Result<Request, HttpError> {
    let mut budget = MAX_HEAD;
    // Tolerate empty lines before a request (RFC 9112 §2.2).
    let mut request_line = read_line(reader, &mut budget)?;
    while request_line.is_empty() {
        request_line = read_line(reader, &mut budget)?;
    }
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("bad request line"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(HttpError::Malformed("unsupported HTTP version")),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::Malformed("bad method"));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(HttpError::Malformed("bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    // Absolute-form targets (`http://host/path`) keep only their path.
    let raw_path = match raw_path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => raw_path,
    };
    let mut request = Request {
        method: method.to_owned(),
        path: percent_decode(raw_path, false),
        query: parse_query(raw_query),
        headers,
        http10,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(HttpError::Malformed(
            "chunked request bodies are not supported",
        ));
    }
    if let Some(length) = request.header("content-length") {
        let length: u64 = length
            .parse()
            .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
        if length > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        let copied =
            io::Read::read_to_end(&mut io::Read::take(&mut *reader, length), &mut request.body)?;
        if copied as u64 != length {
            return Err(HttpError::Malformed("connection closed inside the body"));
        }
    }
    Ok(request)
}

/// `a=1&b=x%3Dy` → `[("a","1"), ("b","x=y")]`.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in query strings); malformed escapes stay
/// as they are, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let decoded = bytes
                    .get(i + 1)
                    .and_then(|&h| hex(h))
                    .zip(bytes.get(i + 2).and_then(|&l| hex(l)));
                if let Some((h, l)) = decoded {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b);
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        410 => "Gone",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

fn head(status: u16, content_type: &str, keep_alive: bool) -> String {
    let date =
        k8s_openapi::jiff::fmt::strtime::format("%a, %d %b %Y %H:%M:%S GMT", super::objects::now())
            .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nCache-Control: no-cache, private\r\nDate: {date}\r\n{}",
        reason_phrase(status),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    )
}

pub fn write_response<W: Write>(
    w: &mut W,
    response: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = head(response.status, response.content_type, keep_alive).into_bytes();
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    w.write_all(&out)?;
    w.flush()
}

/// Starts a chunked response; follow with [`write_chunk`]s and one [`write_last_chunk`].
pub fn write_chunked_head<W: Write>(w: &mut W, status: u16, content_type: &str) -> io::Result<()> {
    let mut out = head(status, content_type, true);
    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
    w.write_all(out.as_bytes())?;
    w.flush()
}

pub fn write_chunk<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        // An empty chunk would end the stream.
        return Ok(());
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)?;
    w.flush()
}

pub fn write_last_chunk<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, HttpError> {
        read_request(&mut io::Cursor::new(raw.as_bytes()))
    }

    #[test]
    fn parses_a_kubectl_request() {
        let r = parse(
            "GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dnettest&limit=500 HTTP/1.1\r\n\
             Host: 127.0.0.1\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/v1/namespaces/default/pods");
        assert_eq!(r.param("fieldSelector"), Some("metadata.name=nettest"));
        assert_eq!(r.param("limit"), Some("500"));
        assert_eq!(
            r.header("ACCEPT"),
            Some("application/json;as=Table;v=v1;g=meta.k8s.io")
        );
        assert!(r.keep_alive());
    }

    #[test]
    fn reads_consecutive_requests_and_skips_bodies() {
        let mut input = io::Cursor::new(
            b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.0\r\n\r\n".to_vec(),
        );
        assert_eq!(read_request(&mut input).expect("first").path, "/x");
        let second = read_request(&mut input).expect("second");
        assert_eq!(second.path, "/y");
        assert!(!second.keep_alive());
        assert!(matches!(read_request(&mut input), Err(HttpError::Closed)));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "get / HTTP/1.1\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",
            "GET / HTTP/1.1\r\nHost: x",
        ] {
            assert!(parse(raw).is_err(), "{raw:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(&long), Err(HttpError::TooLarge)));
        let bytes = b"GET /\xff HTTP/1.1\r\n\r\n".to_vec();
        assert!(read_request(&mut io::Cursor::new(bytes)).is_err());
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%3Db+c", true), "a=b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
        assert_eq!(percent_decode("%ff", true), "\u{fffd}");
        assert_eq!(
            parse_query("watch=1&&labelSelector=app%20in%20(a%2Cb)&x"),
            [
                ("watch".to_owned(), "1".to_owned()),
                ("labelSelector".to_owned(), "app in (a,b)".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn chunked_framing() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello\n").expect("chunk");
        write_chunk(&mut out, b"").expect("nothing");
        write_last_chunk(&mut out).expect("last");
        assert_eq!(out, b"6\r\nhello\n\r\n0\r\n\r\n");
    }
}
