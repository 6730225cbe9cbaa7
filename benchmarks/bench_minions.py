#!/usr/bin/env python3
"""Minions throughput and constrained decoding, SmolLM2-135M, one run:

1. 500 generations under MinionS' job-output schema (explanation, citation, answer) from real
   QASPER chunks: how many parse, and seconds per token vs the same prompts unconstrained
   (also: how many unconstrained replies parse as JSON at all).
2. The local jobs of one MinionS round (jobs x chunks): batched (8 at a time) vs one at a time.
3. `tandem serve`: requests per second with 8 concurrent clients vs 1.

    python benchmarks/bench_minions.py [--generations 500] [--threads 2]

Writes results/bench/minions.{md,csv}.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import tandem  # noqa: E402
from tandem import _C, collab  # noqa: E402


def chunks_and_jobs(n: int):
    docs = _C.load_long_doc_qa("type: qasper\nquestions_per_paper: 1\n")
    jobs = ["What dataset is used?", "Which method is proposed?", "What metric is reported?", "What is the main result?"]
    out = []
    for d in docs:
        for c in _C.chunk_text(d["document"], 1500):
            out.append((c, jobs[len(out) % len(jobs)]))
            if len(out) == n:
                return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    threads = args.threads or _C.available_cores()
    schema = collab.job_output_schema()
    rows = []

    # 1. constrained vs unconstrained
    eng = collab.LocalEngine("smollm2-135m", threads=threads)
    items = chunks_and_jobs(args.generations)
    prompts = [f"<|im_start|>user\nText:\n{c}\n\nTask: {j}\nReply in JSON with keys explanation, citation, answer."
               f"<|im_end|>\n<|im_start|>assistant\n" for c, j in items]
    t = time.perf_counter()
    parsed, toks = 0, 0
    for s in range(0, len(prompts), 8):
        for o in collab.generate_json(eng, prompts[s:s + 8], schema, args.max_tokens):
            toks += o["tokens"]
            try:
                v = json.loads(o["text"])
                parsed += int(set(v) == {"explanation", "citation", "answer"})
            except ValueError:
                pass
    c_secs = time.perf_counter() - t
    local = collab.client({"type": "local", "model": "smollm2-135m", "max_batch": 8}, threads=threads)
    convs = [[("user", f"Text:\n{c}\n\nTask: {j}\nReply in JSON with keys explanation, citation, answer.")] for c, j in items]
    t = time.perf_counter()
    free = local.chat(convs, max_tokens=args.max_tokens)
    u_secs = time.perf_counter() - t
    u_toks = sum(r["completion_tokens"] for r in free)
    u_parsed = 0
    for r in free:
        try:
            json.loads(r["content"])
            u_parsed += 1
        except ValueError:
            pass
    n = len(prompts)
    rows += [("constrained generations that parse", f"{parsed} / {n}"),
             ("unconstrained replies that parse as JSON", f"{u_parsed} / {n}"),
             ("constrained ms per token (batch 8)", f"{1000 * c_secs / toks:.2f}"),
             ("unconstrained ms per token (batch 8)", f"{1000 * u_secs / u_toks:.2f}"),
             ("constraint overhead per token", f"{100 * ((c_secs / toks) / (u_secs / u_toks) - 1):+.1f}%")]

    # 2. one MinionS round's local jobs: batched vs one at a time
    jobs = [[("user", f"Text:\n{c}\n\nTask: {j}\nReply in JSON. If the text does not contain it, answer \"none\".")]
            for c, j in chunks_and_jobs(16)]
    times = {}
    for mb in (8, 1):
        cli = collab.client({"type": "local", "model": "smollm2-135m", "max_batch": mb}, threads=threads)
        t = time.perf_counter()
        cli.chat(jobs, max_tokens=args.max_tokens, json_schema=schema)
        times[mb] = time.perf_counter() - t
    rows += [("MinionS round, 16 jobs, batched by 8: jobs/s", f"{16 / times[8]:.2f}"),
             ("MinionS round, 16 jobs, one at a time: jobs/s", f"{16 / times[1]:.2f}"),
             ("batched / one at a time", f"{times[1] / times[8]:.2f}x")]

    # 3. tandem serve: 8 concurrent clients vs 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = subprocess.Popen([sys.executable, "-m", "tandem", "serve", "--model", "smollm2-135m", "--port", str(port),
                            "--threads", str(threads), "--batch-window-ms", "20"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.3)

        def ask(i):
            body = json.dumps({"messages": [{"role": "user", "content": f"Write one sentence about the number {i}."}],
                               "max_tokens": 32}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=300).read()

        def load(clients: int, total: int = 16) -> float:
            todo = list(range(total))
            lock = threading.Lock()

            def worker():
                while True:
                    with lock:
                        if not todo:
                            return
                        i = todo.pop()
                    ask(i)

            t0 = time.perf_counter()
            ts = [threading.Thread(target=worker) for _ in range(clients)]
            [x.start() for x in ts]
            [x.join() for x in ts]
            return total / (time.perf_counter() - t0)

        load(1, 2)  # warm-up
        r1, r8 = load(1), load(8)
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats").read())
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    rows += [("tandem serve, 1 client: requests/s (32 tokens each)", f"{r1:.2f}"),
             ("tandem serve, 8 concurrent clients: requests/s", f"{r8:.2f}"),
             ("8 clients / 1 client", f"{r8 / r1:.2f}x (largest batch {stats['max_batch_seen']})")]

    out = ROOT / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "minions.csv", "w") as f:
        f.write("measure,value\n" + "".join(f"\"{k}\",\"{v}\"\n" for k, v in rows))
    md = [f"# Minions: constrained decoding and throughput (SmolLM2-135M, {threads} threads, up to {args.max_tokens} tokens)", "",
          "| measure | value |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in rows]
    (out / "minions.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
