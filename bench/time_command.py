"""Wall time of one process, start to exit, over RUNS runs after 10 warm-up
runs: p50, p95 and mean in milliseconds on one line. Timed from Python so
that no shell's fork is counted. Used by release.sh and npm.sh.

Usage: python3 time_command.py RUNS COMMAND [ARGS...]
"""
import statistics
import subprocess
import sys
import time

runs, command = int(sys.argv[1]), sys.argv[2:]
for _ in range(10):
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
samples = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    samples.append((time.perf_counter() - start) * 1000)
samples.sort()
p95 = samples[int(len(samples) * 0.95) - 1]
print(f"{statistics.median(samples):7.2f} {p95:7.2f} {statistics.fmean(samples):7.2f}")
