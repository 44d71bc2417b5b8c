"""Polls `URL/health` on one keep-alive connection until its standard input closes, then prints
how long the answers took: `{"count": n, "worst_ms": w, "failures": f}`.

    python tests/health_probe.py URL

A process of its own, so that what it measures is the server, not a test's busy event loop.
"""

from __future__ import annotations

import sys
import threading
import time

import httpx
import msgspec

INTERVAL_SECONDS = 0.01


def main(url: str) -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies, failures = [], 0
    with httpx.Client(base_url=url, timeout=5) as http:
        print("ready", flush=True)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = http.get("/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not ok
            time.sleep(INTERVAL_SECONDS)
    print(msgspec.json.encode({"count": len(latencies), "worst_ms": max(latencies), "failures": failures}).decode())


if __name__ == "__main__":
    main(sys.argv[1])
