#!/usr/bin/env python3
"""Screenshot of the ebbsocks dashboard in headless Chromium, for the docs.

Starts chromedriver on a free loopback port, opens the dashboard, types the
API token into the page's form (never into the URL), waits until the page
has been live for --min-seconds and shows at least --min-open open
connections, then saves a PNG. Standard library only; needs the Debian
packages chromium and chromium-driver.

    scripts/dashboard_screenshot.py --url http://127.0.0.1:9090/dashboard \
        --token-file /tmp/token --min-seconds 30 --min-open 2500 --out docs/img/dashboard.png
"""

import argparse
import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def text(self, css):
        script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';"
        return self.s("POST", "/execute/sync", {"script": script, "args": [css]})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", help="file holding the API token, if the API has one")
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--min-open", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--size", default="1600,1100", help="window WIDTH,HEIGHT")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    port = free_port()
    driver_proc = subprocess.Popen(["chromedriver", f"--port={port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = Driver(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if driver.call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("chromedriver did not become ready within 30 s")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={args.size}", "--hide-scrollbars"]}}}}
        driver.session = driver.call("POST", "/session", caps)["sessionId"]
        driver.s("POST", "/url", {"url": args.url})
        if args.token_file:
            with open(args.token_file) as f:
                token = f.read().strip()
            field = driver.s("POST", "/element", {"using": "css selector", "value": "#token"})[ELEMENT]
            driver.s("POST", f"/element/{field}/value", {"text": token})
            button = driver.s("POST", "/element", {"using": "css selector", "value": "#connect"})[ELEMENT]
            driver.s("POST", f"/element/{button}/click", {})
        live_since = None
        deadline = time.monotonic() + args.timeout
        while True:
            status = driver.text("#status")
            if status.startswith("live") and live_since is None:
                live_since = time.monotonic()
            try:
                open_now = int(driver.text("#open-connections").replace(",", ""))
            except ValueError:
                open_now = -1
            if live_since is not None and time.monotonic() - live_since >= args.min_seconds \
                    and open_now >= args.min_open:
                break
            if time.monotonic() > deadline:
                sys.exit(f"gave up after {args.timeout} s: status {status!r}, open {open_now}")
            time.sleep(0.2)
        png = base64.b64decode(driver.s("GET", "/screenshot"))
        with open(args.out, "wb") as f:
            f.write(png)
        print(f"wrote {args.out} ({len(png)} bytes) with {open_now} open connections shown")
    finally:
        if driver.session:
            try:
                driver.call("DELETE", f"/session/{driver.session}")
            except OSError:
                pass
        driver_proc.terminate()
        driver_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
