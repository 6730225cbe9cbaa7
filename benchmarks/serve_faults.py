"""Fault injection against `tandem serve` (loopback only, bounded): while normal clients send
short requests, one client asks for a huge generation, one disconnects mid-generation, dozens
of connections send half a header and stall, some trickle a header byte at a time, and one sends
a prompt past the context; then the server gets SIGTERM with the huge generation still running.

Measured: latency of the normal requests (p50 / p95) under all that, whether the disconnected
request was cancelled, the 400 for the over-long prompt, and the seconds from SIGTERM to exit.

    python benchmarks/serve_faults.py                 # writes results/reliability/serve_faults.json
The test suite runs the same scenario, smaller (tests/python/test_serve_faults.py).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict, timeout: float = 120.0, endpoint: str = "chat/completions") -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/{endpoint}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=10) as r:
        return json.loads(r.read())


def chat(text: str, max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}


def start_server(model: str, port: int, log: Path, extra: list[str] | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "tandem", "serve", "--model", model, "--port", str(port),
                             "--read-timeout", "3", "--header-timeout", "3", *(extra or [])],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tandem serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("tandem serve did not start within 120 s")


def scenario(model: str = "smollm2-135m", normal_requests: int = 24, normal_threads: int = 4,
             slow_connections: int = 40, huge_tokens: int = 6000, trickle_connections: int = 8,
             log: Path | None = None) -> dict:
    port = free_port()
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_faults_{port}.log"
    proc = start_server(model, port, log)
    out: dict = {"model": model, "normal_requests": normal_requests, "slow_connections": slow_connections}
    try:
        # 1. A client that goes away mid-generation: its request must be cancelled, not run on.
        s = socket.create_connection(("127.0.0.1", port))
        body = json.dumps(chat("Write a very long story about the sea.", 3000)).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.5)
        s.close()
        t0 = time.time()
        while stats(port)["cancelled"] < 1 and time.time() - t0 < 10:
            time.sleep(0.1)
        out["disconnect_cancelled_after_s"] = round(time.time() - t0, 2)
        out["disconnect_cancelled"] = stats(port)["cancelled"] >= 1

        # 2. The storm: a huge generation, stalled half-headers, an over-long prompt, and normal clients.
        # Unloaded first, for comparison.
        lat0 = []
        for i in range(max(4, normal_requests // 4)):
            t = time.time()
            post(port, chat(f"Name a colour. ({i})", 16))
            lat0.append(time.time() - t)
        out["latency_unloaded_p50_s"] = round(statistics.median(lat0), 3)
        # A raw counting prompt: the model keeps counting rather than stopping early.
        huge: dict = {}
        count = ", ".join(str(i) for i in range(1, 40)) + ","
        threading.Thread(target=lambda: huge.update(zip(("status", "body"), post(
            port, {"prompt": count, "max_tokens": huge_tokens}, 600, "completions"))), daemon=True).start()
        time.sleep(1.0)
        slow = []
        for _ in range(slow_connections):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            slow.append(c)
        status_long, body_long = post(port, chat("word " * 9000, 8))
        out["over_long_prompt_status"] = status_long
        out["over_long_prompt_message"] = body_long.get("error", {}).get("message", "")[:160]
        lat: list[float] = []
        codes: list[int] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            for i in range(k, normal_requests, normal_threads):
                t = time.time()
                code, _ = post(port, chat(f"Name a colour. ({i})", 16))
                with lock:
                    lat.append(time.time() - t)
                    codes.append(code)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(normal_threads)]
        t_storm = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["normal_seconds_total"] = round(time.time() - t_storm, 2)
        out["normal_ok"] = sum(c == 200 for c in codes)
        lat.sort()
        out["latency_p50_s"] = round(statistics.median(lat), 3)
        out["latency_p95_s"] = round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3)
        out["huge_still_running_at_sigterm"] = not huge
        for c in slow:
            c.close()

        # 3. Tricklers: a header byte every 0.5 s never trips the per-read timeout (3 s), but the
        # whole head must arrive within --header-timeout (3 s): each is dropped soon after.
        trick = [socket.create_connection(("127.0.0.1", port)) for _ in range(trickle_connections)]
        t0, alive = time.time(), len(trick)
        while alive and time.time() - t0 < 12:
            alive = 0
            for c in trick:
                try:
                    c.sendall(b"X")
                    alive += 1
                except OSError:
                    pass
            time.sleep(0.5)
        out["trickle_connections"] = trickle_connections
        out["trickle_all_dropped_after_s"] = round(time.time() - t0, 1) if not alive else None
        out["header_timeouts"] = stats(port)["header_timeouts"]
        for c in trick:
            c.close()

        # 4. SIGTERM mid-generation: the server cancels and exits within seconds.
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out["sigterm_exit_s"] = round(time.time() - t0, 2)
        out["sigterm_exit_code"] = proc.returncode
        time.sleep(0.5)
        out["huge_request_status"] = huge.get("status")
        out["server_log_tail"] = log.read_text()[-400:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default=str(ROOT / "results" / "reliability" / "serve_faults.json"))
    args = ap.parse_args()
    res = scenario(args.model)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
