"""Creates ROWS device codes at BASE from CONNS keep-alive connections and
prints, as JSON, the rate and latency of each SLICE of rows.

Each connection is a thread that takes the next row number and posts one
code; the time a slice ends is when its last row is answered, so the
slices' rates add up to the whole run.
"""

import http.client
import json
import os
import threading
import time
import urllib.parse

BASE = urllib.parse.urlparse(os.environ["BASE"])
ROWS = int(os.environ.get("ROWS", "100000"))
SLICE = int(os.environ.get("SLICE", "10000"))
CONNS = int(os.environ.get("CONNS", "4"))
BODY = json.dumps({"device_name": "bench", "device_os": "linux", "device_arch": "x86_64"})
HEADERS = {"content-type": "application/json"}

lock = threading.Lock()
taken = 0
answered = 0
errors = {}
# Per slice: when its last row was answered, and each row's latency.
ends = {}
latencies = [[] for _ in range((ROWS + SLICE - 1) // SLICE)]


def worker():
    global taken, answered, errors
    conn = http.client.HTTPConnection(BASE.hostname, BASE.port)
    while True:
        with lock:
            if taken >= ROWS:
                break
            row = taken
            taken += 1
        started = time.perf_counter()
        conn.request("POST", "/api/auth/cli/device-code", BODY, HEADERS)
        response = conn.getresponse()
        response.read()
        done = time.perf_counter()
        with lock:
            if response.status != 200:
                errors[response.status] = errors.get(response.status, 0) + 1
            latencies[row // SLICE].append(done - started)
            answered += 1
            if answered % SLICE == 0 or answered == ROWS:
                ends[(answered - 1) // SLICE] = done
    conn.close()


start = time.perf_counter()
threads = [threading.Thread(target=worker) for _ in range(CONNS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()

slices = []
previous = start
for index in range(len(latencies)):
    end = ends[index]
    rows = min(SLICE, ROWS - index * SLICE)
    lat = sorted(latencies[index])
    slices.append({
        "from": index * SLICE,
        "to": index * SLICE + rows,
        "seconds": end - previous,
        "rate": rows / (end - previous),
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
    })
    previous = end
print(json.dumps({
    "rows": ROWS,
    "seconds": previous - start,
    "rate": ROWS / (previous - start),
    # Answers other than 200, by status.
    "errors": errors,
    "slices": slices,
}))
