"""Bounded fuzzing of every reader of untrusted input (tandem_fuzz, an ASan + UBSan build: GGUF, safetensors,
tokenizer.json, YAML configs, JSON schemas) on seed corpora of real files, plus the HTTP
request parser of `tandem serve` (mutated raw requests over a socket). Each target runs for
TANDEM_FUZZ_SECONDS (default 10) with a fixed seed: zero crashes, and every rejection a clear
error naming the input (tandem_fuzz counts anything else as a finding and exits 1)."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_llama_checkpoint
from fuzz_seeds import make_seeds

SECONDS = float(os.environ.get("TANDEM_FUZZ_SECONDS", "10"))
FUZZ = REPO / "build" / "tandem_fuzz"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    ckpt = make_tiny_llama_checkpoint(tmp / "tiny-llama")
    return make_seeds(tmp / "seeds", ckpt), ckpt


def run_fuzz(binary: Path, target: str, seed_dir: Path, findings: Path, seconds: float = SECONDS) -> dict:
    # detect_leaks=0: libtorch's own one-time allocations are not ours to report.
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    p = subprocess.run([str(binary), "--target", target, "--seeds", str(seed_dir), "--seconds", str(seconds),
                        "--seed", "0", "--findings", str(findings)], capture_output=True, text=True,
                       timeout=seconds + 120, env=env)
    assert p.returncode in (0, 1), f"{target}: the fuzzer crashed or a sanitizer fired (rc {p.returncode}):\n{p.stderr[-4000:]}"
    assert p.returncode == 0, f"{target}: unclear rejections:\n{p.stderr[-4000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("target", ["gguf", "safetensors", "config", "tokenizer_json", "json_schema"])
def test_readers_survive_mutated_real_files(seeds, target, tmp_path):
    dirs, _ = seeds
    res = run_fuzz(FUZZ, target, dirs[target], tmp_path / "findings")
    print(json.dumps(res))
    assert res["executions"] > res["seeds"] and res["unclear"] == 0
    assert res["rejected"] > 0  # the mutator reached the error paths


def test_http_request_parser_survives_mutated_requests(seeds):
    """Raw mutated HTTP requests at a live `tandem serve`: each gets an HTTP answer (a 4xx for a
    bad one) or a closed connection, never a crash, and the server still answers afterwards."""
    _, ckpt = seeds
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(ckpt.parent / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "tandem", "serve", "--model", str(ckpt), "--port", str(port),
                             "--read-timeout", "1"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, (ckpt.parent / "serve.log").read_text()
                time.sleep(0.2)
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        good = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        rng = random.Random(0)
        execs, statuses = 0, {}
        t0 = time.time()
        while time.time() - t0 < SECONDS:
            b = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                if not b:
                    break
                k = rng.randrange(5)
                i = rng.randrange(len(b))
                if k == 0:
                    b[i] = rng.randrange(256)
                elif k == 1:
                    del b[i:i + rng.randint(1, 16)]
                elif k == 2:
                    b[i:i] = b[i:i + rng.randint(1, 32)]
                elif k == 3:
                    b[i:i] = rng.choice([b"99999999999999999999", b"-1", b"\r\n", b"\x00", b"\xff\xfe", b"{", b"\"n\": 100,"])
                else:
                    b = b[: rng.randrange(len(b))]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.settimeout(5)
                c.sendall(bytes(b))
                c.shutdown(socket.SHUT_WR)
                try:
                    reply = c.recv(64)
                except (socket.timeout, ConnectionResetError):
                    reply = b""
            status = reply.split(b" ")[1].decode(errors="replace") if reply.startswith(b"HTTP/1.1 ") else "closed"
            statuses[status] = statuses.get(status, 0) + 1
            execs += 1
            assert proc.poll() is None, f"tandem serve died on input {bytes(b)!r}"
            assert not status.startswith("5"), f"a 5xx for a client's bad input {bytes(b)!r}"
        print(json.dumps({"target": "http", "executions": execs, "statuses": statuses}))
        assert execs > 50 and any(s.startswith("4") for s in statuses)
        from urllib.request import Request, urlopen

        with urlopen(Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode()), timeout=30) as r:
            assert r.status == 200
    finally:
        proc.kill()
        proc.wait()
