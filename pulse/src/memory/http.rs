//! A deliberately small HTTP/1.1 GET over a std TcpStream, for a server's
//! memory endpoint. `Connection: close` lets the body run to EOF; chunked
//! bodies are decoded because some frameworks stream JSON that way.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use super::Reading;

/// Responses larger than this are not a memory report.
const MAX_RESPONSE: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{s}`: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port = p.parse().map_err(|_| format!("`{s}`: bad port `{p}`"))?;
                (h, port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{s}`: no host"));
        }
        Ok(HttpUrl {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            path: path.into(),
        })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl HttpUrl {
    /// GETs the URL and returns the body of a 200 response. A `token` is
    /// sent as `Authorization: Bearer`, as ebbsocks's API expects when set.
    pub fn get(&self, timeout: Duration, token: Option<&str>) -> Result<Vec<u8>, String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{self}: resolve: {e}"))?
            .next()
            .ok_or_else(|| format!("{self}: no address"))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("{self}: connect: {e}"))?;
        let io = |e: std::io::Error| format!("{self}: {e}");
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let host = self.host.as_str();
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n",
            self.path
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.take(MAX_RESPONSE).read_to_end(&mut raw).map_err(io)?;
        parse_response(&raw).map_err(|e| format!("{self}: {e}"))
    }
}

/// Status line, headers, then the body (plain, length-limited or chunked).
fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete response head")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response head is not UTF-8")?;
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!("status `{status}`"));
    }
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name == "content-length" {
            let len: usize = value.parse().map_err(|_| "bad content-length")?;
            body = body.get(..len).ok_or("body shorter than content-length")?;
        }
    }
    if chunked {
        decode_chunked(body)
    } else {
        Ok(body.to_vec())
    }
}

fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("truncated chunk")?);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// `rss_bytes` is required; `rss_anon_bytes` (or `anon_bytes`) is used when
/// present; every other number, nested ones as `a.b`, goes to `detail`.
pub fn parse_memory_json(body: &[u8]) -> Result<Reading, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("memory JSON: {e}"))?;
    let rss_bytes = v
        .get("rss_bytes")
        .and_then(Value::as_u64)
        .ok_or("memory JSON has no unsigned integer `rss_bytes`")?;
    let rss_anon_bytes = ["rss_anon_bytes", "anon_bytes"]
        .iter()
        .find_map(|k| v.get(k).and_then(Value::as_u64));
    let mut detail = BTreeMap::new();
    flatten("", &v, 0, &mut detail);
    detail.remove("rss_bytes");
    Ok(Reading {
        rss_bytes,
        rss_anon_bytes,
        detail,
    })
}

fn flatten(prefix: &str, v: &Value, depth: usize, out: &mut BTreeMap<String, u64>) {
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_u64() {
                out.insert(prefix.to_string(), x);
            }
        }
        Value::Object(map) if depth < 3 => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, child, depth + 1, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u: HttpUrl = "http://127.0.0.1:9090/api/memory".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9090, "/api/memory")
        );
        let u: HttpUrl = "http://[::1]:81".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 81, "/"));
        assert_eq!(u.to_string(), "http://[::1]:81/");
        assert!("https://x/".parse::<HttpUrl>().is_err());
        assert!("http://:80/".parse::<HttpUrl>().is_err());
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}trailing";
        assert_eq!(parse_response(plain).unwrap(), b"{}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), b"{\"a\":1}");
        let err = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap_err();
        assert!(err.contains("404"));
    }

    #[test]
    fn memory_json_needs_rss_bytes_only() {
        let r = parse_memory_json(
            br#"{"rss_bytes": 1048576, "rss_anon_bytes": 4096, "allocator": {"resident": 7, "name": "je"}}"#,
        )
        .unwrap();
        assert_eq!(r.rss_bytes, 1 << 20);
        assert_eq!(r.rss_anon_bytes, Some(4096));
        assert_eq!(r.detail["allocator.resident"], 7);
        assert!(!r.detail.contains_key("rss_bytes"));
        assert!(parse_memory_json(br#"{"rss": 5}"#).is_err());
        assert!(parse_memory_json(b"not json").is_err());
    }

    #[test]
    fn gets_over_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let head = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(head.starts_with("GET /api/memory HTTP/1.1\r\n"), "{head}");
            assert!(
                head.contains("\r\nAuthorization: Bearer s3cret\r\n"),
                "{head}"
            );
            s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"rss_bytes\":42}",
            )
            .unwrap();
        });
        let url: HttpUrl = format!("http://127.0.0.1:{port}/api/memory")
            .parse()
            .unwrap();
        let body = url.get(Duration::from_secs(5), Some("s3cret")).unwrap();
        server.join().unwrap();
        assert_eq!(parse_memory_json(&body).unwrap().rss_bytes, 42);
    }
}
