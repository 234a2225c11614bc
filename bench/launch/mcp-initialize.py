#!/usr/bin/env python3
"""Stands in for Claude Code in bench/launch.sh: starts the MCP server named
in the --mcp-config file RUNS times and times `initialize` (spawn to answer)
and `tools/list`, as Claude Code would. Prints one JSON line."""
import json, os, subprocess, sys, time

args = sys.argv[1:]
config = json.load(open(args[args.index("--mcp-config") + 1]))
server = config["mcpServers"]["claudemesh"]
env = dict(os.environ, **server["env"])
runs = int(os.environ.get("RUNS", "20"))
init_ms, tools_ms = [], []
for _ in range(runs):
    start = time.perf_counter()
    p = subprocess.Popen([server["command"], *server["args"]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}}) + "\n")
    p.stdin.flush()
    json.loads(p.stdout.readline())
    init_ms.append((time.perf_counter() - start) * 1000)
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    start = time.perf_counter()
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}) + "\n")
    p.stdin.flush()
    json.loads(p.stdout.readline())
    tools_ms.append((time.perf_counter() - start) * 1000)
    p.stdin.close()
    p.wait()
def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))]
print(json.dumps({"runs": runs, "initialize_p50_ms": pct(init_ms, .5), "initialize_p95_ms": pct(init_ms, .95),
                  "initialize_max_ms": max(init_ms), "tools_list_p50_ms": pct(tools_ms, .5)}))
