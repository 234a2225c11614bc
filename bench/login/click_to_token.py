#!/usr/bin/env python3
"""Click → token: how long after the browser's Approve the CLI has saved its login.

Runs the real `claudemesh login --no-browser` RUNS times against CLI_URL and
approves each code on APPROVE_URL (the same server, or another instance on the
same database) as the browser's button does: a POST with the session cookie.
The approval comes at a random moment 0.2 to 2 s after the code is shown, so
it lands anywhere in a polling cycle. Measured from sending the approval to
the CLI's `✔ Token saved to …` line, which it prints right after writing
auth.json. With RELAY=1 the CLI talks through a relay that drops `?wait=`,
as to a server from before it: the plain polling this replaced.

Prints one JSON line: the per-run times in ms.
"""
import http.client
import http.cookiejar
import json
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CM = os.environ["CM"]
CLI_URL = os.environ["CLI_URL"]
APPROVE_URL = os.environ.get("APPROVE_URL", CLI_URL)
RUNS = int(os.environ.get("RUNS", "20"))
RELAY = os.environ.get("RELAY") == "1"
USER_CODE = re.compile(r"^\s*([A-Z]{4}-[A-Z]{4})\s*$")


def browser():
    """A signed-in browser: a fresh account's session cookie, our Origin."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    email = f"bench.{os.getpid()}.{time.time_ns()}@example.com"
    body = json.dumps({"email": email, "password": "bench password 1", "name": "Bench"}).encode()
    request = urllib.request.Request(
        f"{APPROVE_URL}/api/auth/register",
        data=body,
        headers={"content-type": "application/json", "origin": APPROVE_URL},
    )
    opener.open(request).read()
    return opener


def approve(opener, code):
    request = urllib.request.Request(
        f"{APPROVE_URL}/api/auth/cli/device-code/{code}/approve",
        data=b"",
        method="POST",
        headers={"origin": APPROVE_URL},
    )
    with opener.open(request) as response:
        assert response.status == 200, response.status


def start_relay(upstream):
    """Forwards to `upstream`, dropping the query of device-code polls."""
    target = urllib.parse.urlsplit(upstream)

    class Relay(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def forward(self):
            path = self.path
            if path.startswith("/api/auth/cli/device-code/"):
                path = path.split("?", 1)[0]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            conn.request(self.command, path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_DELETE = forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def one_login(opener, url, delay):
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ["PATH"],
            "CLAUDEMESH_HOME": os.path.join(home, ".claudemesh"),
            "CLAUDEMESH_API_URL": url,
            "NO_COLOR": "1",
            "DO_NOT_TRACK": "1",
        }
        cli = subprocess.Popen(
            [CM, "login", "--no-browser", "--device-name", "bench"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        lines = queue.Queue()

        def read():
            for line in cli.stderr:
                lines.put((time.perf_counter(), line))
            lines.put((time.perf_counter(), None))

        threading.Thread(target=read, daemon=True).start()

        def until(pattern):
            while True:
                at, line = lines.get(timeout=120)
                if line is None:
                    raise RuntimeError(f"the CLI exited before {pattern.pattern}")
                match = pattern.search(line)
                if match:
                    return at, match

        _, match = until(USER_CODE)
        time.sleep(delay)
        clicked = time.perf_counter()
        approve(opener, match.group(1))
        saved, _ = until(re.compile(r"✔ Token saved to"))
        assert cli.wait(timeout=60) == 0
        assert os.path.exists(os.path.join(home, ".claudemesh", "auth.json"))
        return (saved - clicked) * 1000


def main():
    opener = browser()
    url = start_relay(CLI_URL) if RELAY else CLI_URL
    rng = random.Random(8628)
    times = []
    for i in range(RUNS):
        ms = one_login(opener, url, rng.uniform(0.2, 2.0))
        times.append(round(ms, 1))
        print(f"[login-bench] run {i + 1}: {ms:.1f} ms", file=sys.stderr)
    print(json.dumps({"ms": times}))


if __name__ == "__main__":
    main()
