//! A small blocking WebDriver client: headless Debian `chromium` through
//! `chromedriver`, spoken to with plain JSON over HTTP/1.1 (W3C WebDriver).
//! Blocking on purpose: the browser tests run on a plain test thread while
//! the server runs on its own tokio runtime.
//!
//! Every request has a socket timeout and every wait a deadline, so a
//! browser that hangs fails the test instead of the suite.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The longest one WebDriver command may take (starting Chromium is the
/// slowest, a few seconds on a loaded machine).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long chromedriver may take to answer `/status`.
const DRIVER_START: Duration = Duration::from_secs(30);
/// The W3C name of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver` and a Chromium session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

/// Finds a program on `PATH`, or fails the test saying which package has it.
fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{program}` not found on PATH: install the Debian package `{package}`")
        })
}

/// The Chromium executable itself: Debian's `/usr/bin/chromium` is a shell
/// wrapper around it, which chromedriver does not need.
fn chromium_binary() -> PathBuf {
    let wrapper = require("chromium", "chromium");
    let real = PathBuf::from("/usr/lib/chromium/chromium");
    if real.is_file() {
        real
    } else {
        wrapper
    }
}

/// A free loopback port, found by binding port 0 (chromedriver takes a
/// port number, not a socket); `start` retries if someone takes it first.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (as root in CI, hence
    /// `--no-sandbox`; containers have a small /dev/shm, hence
    /// `--disable-dev-shm-usage`).
    pub fn start() -> Browser {
        let driver_path = require("chromedriver", "chromium-driver");
        let chromium = chromium_binary();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut driver = Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromedriver");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match wait_ready(&mut driver, addr) {
                Ok(()) => {
                    let session = new_session(addr, &chromium);
                    return Browser {
                        driver,
                        addr,
                        session,
                    };
                }
                Err(err) => {
                    last_error = err;
                    let _ = driver.kill();
                    let _ = driver.wait();
                }
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, reply) = request(self.addr, method, &path, body.as_ref())
            .unwrap_or_else(|err| panic!("WebDriver {method} {path}: {err}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {reply}");
        reply["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        let value = self.command("GET", "/url", None);
        value.as_str().expect("URL string").to_owned()
    }

    /// The element matching `css`, which must exist.
    pub fn find(&self, css: &str) -> String {
        let value = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element id for {css}: {value}"))
            .to_owned()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        let path = format!("/element/{element}/value");
        self.command("POST", &path, Some(json!({ "text": text })));
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub fn execute(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The text of the element matching `css`, or "" if there is none yet.
    pub fn text_of(&self, css: &str) -> String {
        let script = format!(
            "const el = document.querySelector({}); return el ? el.textContent : '';",
            json!(css)
        );
        self.execute(&script)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls `read` until `done` holds for its value, or fails after
    /// `limit` saying what was expected and what was last seen.
    pub fn wait_for<T: std::fmt::Debug>(
        &self,
        what: &str,
        limit: Duration,
        mut read: impl FnMut(&Browser) -> T,
        mut done: impl FnMut(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let value = read(self);
            if done(&value) {
                return value;
            }
            if Instant::now() > deadline {
                panic!("waited {limit:?} for {what}; last seen: {value:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends Chromium; then chromedriver itself.
        let path = format!("/session/{}", self.session);
        let _ = request(self.addr, "DELETE", &path, None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn wait_ready(driver: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        if let Ok((200, reply)) = request(addr, "GET", "/status", None) {
            if reply["value"]["ready"] == json!(true) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no ready /status on {addr} within {DRIVER_START:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn new_session(addr: SocketAddr, chromium: &std::path::Path) -> String {
    let capabilities = json!({
        "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--window-size=1400,1000",
                ],
            },
        }},
    });
    let (status, reply) = request(addr, "POST", "/session", Some(&capabilities))
        .unwrap_or_else(|err| panic!("creating a Chromium session: {err}"));
    assert_eq!(status, 200, "creating a Chromium session: {reply}");
    reply["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no sessionId in {reply}"))
        .to_owned()
}

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream =
        TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(COMMAND_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever `Connection` says,
    // so the body is read by its length, not to EOF.
    let (head, mut body) = read_head(&mut stream)?;
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_ascii_lowercase())
        })
    };
    let mut chunk = [0u8; 16 * 1024];
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| "bad content-length")?;
        while body.len() < length {
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed inside the body".into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed inside a chunked body".into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body = dechunk(&String::from_utf8(body).map_err(|e| e.to_string())?)?.into_bytes();
    } else {
        stream.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    let body = String::from_utf8(body).map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&body).map_err(|e| format!("{e} in {body:?}"))?;
    Ok((status, json))
}

/// Reads up to the end of the headers; returns them and any body bytes
/// read with them.
fn read_head(stream: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = buffer.split_off(end + 4);
            buffer.truncate(end);
            let head = String::from_utf8(buffer).map_err(|e| e.to_string())?;
            return Ok((head, body));
        }
        if buffer.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the end of the headers".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("bad chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..size).ok_or("short chunk")?);
        rest = after.get(size + 2..).ok_or("short chunk")?;
    }
}
