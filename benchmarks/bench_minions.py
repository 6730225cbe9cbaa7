#!/usr/bin/env python3
"""Minions throughput and constrained decoding, SmolLM2-135M, one run:

1. 500 generations under MinionS' job-output schema (explanation, citation, answer) from real
   QASPER chunks (1,500 characters, two jobs per chunk as in a MinionS round): how many parse,
   how many of the same prompts parse unconstrained, and decode milliseconds per token
   constrained vs unconstrained (a prompt-only pass of the same batches is subtracted).
2. The local jobs of one MinionS round (every job on every chunk of one QASPER paper), batched 8
   at a time vs one at a time: as configured in configs/minions/protocol_minions.yaml
   (4,000-character chunks, 2 jobs, 100 tokens; 10 chunks), and with 1,500-character chunks
   and 4 jobs (4 chunks).
3. `tandem serve`: requests per second with 8 concurrent clients vs 1.

    python benchmarks/bench_minions.py [--generations 500] [--threads 2]

Writes results/bench/minions.{md,csv}.
"""
from __future__ import annotations

import argparse
import json
import platform
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

JOBS = ["What dataset is used?", "Which method is proposed?", "What metric is reported?", "What is the main result?"]


def chunk_job_pairs(n: int, chunk_chars: int = 1500, jobs_per_chunk: int = 2):
    """(chunk, job) pairs in MinionS order: every chunk with `jobs_per_chunk` jobs, papers in turn."""
    docs = _C.load_long_doc_qa("type: qasper\nquestions_per_paper: 1\n")
    out = []
    for d in docs:
        for c in _C.chunk_text(d["document"], chunk_chars):
            for j in range(jobs_per_chunk):
                out.append((c, JOBS[(len(out) // jobs_per_chunk + j) % len(JOBS)]))
                if len(out) == n:
                    return out
    return out


def job_prompt(chunk: str, job: str, question: str = "") -> str:
    q = f"\nQuestion: {question}" if question else ""
    return f"Text:\n{chunk}\n\nTask: {job}{q}\nReply in JSON. If the text does not contain it, answer \"none\"."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    threads = args.threads or _C.available_cores()
    schema = collab.job_output_schema()
    rows = []

    # 1. constrained vs unconstrained, 500 generations in batches of 8
    items = chunk_job_pairs(args.generations)
    convs = [[("user", job_prompt(c, j))] for c, j in items]
    batches = [convs[s:s + 8] for s in range(0, len(convs), 8)]
    local = collab.client({"type": "local", "model": "smollm2-135m", "max_batch": 8}, threads=threads)

    def timed(label: str, max_tokens: int, constrained: bool):
        bar = _C.Progress(label, len(batches), "batch")
        outs, t = [], time.perf_counter()
        for b in batches:
            outs += local.chat(b, max_tokens=max_tokens, json_schema=schema if constrained else None)
            bar.update(1)
        bar.finish()
        return outs, time.perf_counter() - t

    cons, c_secs = timed("constrained", args.max_tokens, True)
    free, u_secs = timed("unconstrained", args.max_tokens, False)
    _, p_secs = timed("prompt pass only", 1, True)  # the same prompt pass and first token: subtracted from both
    toks = sum(r["completion_tokens"] for r in cons)
    u_toks = sum(r["completion_tokens"] for r in free)
    parsed = u_parsed = 0
    for r in cons:
        try:
            parsed += int(set(json.loads(r["content"])) == {"explanation", "citation", "answer"})
        except ValueError:
            pass
    for r in free:
        try:
            json.loads(r["content"])
            u_parsed += 1
        except ValueError:
            pass
    n = len(convs)
    c_ms = 1000 * (c_secs - p_secs) / (toks - n)
    u_ms = 1000 * (u_secs - p_secs) / max(1, u_toks - n)
    rows += [("constrained generations that parse", f"{parsed} / {n}"),
             ("unconstrained replies that parse as JSON", f"{u_parsed} / {n}"),
             ("constrained: seconds (tokens)", f"{c_secs:.0f} ({toks})"),
             ("unconstrained: seconds (tokens)", f"{u_secs:.0f} ({u_toks})"),
             ("prompt pass only: seconds", f"{p_secs:.0f}"),
             ("constrained decode ms per token (batch 8)", f"{c_ms:.2f}"),
             ("unconstrained decode ms per token (batch 8)", f"{u_ms:.2f}"),
             ("constraint overhead per decoded token", f"{100 * (c_ms / u_ms - 1):+.1f}%")]

    # 2. one MinionS round's local jobs: batched vs one at a time
    paper = _C.load_long_doc_qa("type: qasper\nquestions_per_paper: 1\n")[0]
    for chunk_chars, n_chunks, n_jobs, job_tokens, label in (
            (4000, 10, 2, 100, "as configured (4,000-char chunks, 2 jobs, 100 tokens)"),
            (1500, 4, 4, 64, "1,500-char chunks, 4 jobs, 64 tokens")):
        chunks = _C.chunk_text(paper["document"][:40000], chunk_chars)[:n_chunks]
        jobs = [[("user", job_prompt(c, j, paper["question"]))] for c in chunks for j in JOBS[:n_jobs]]
        times = {}
        for mb in (8, 1):
            cli = collab.client({"type": "local", "model": "smollm2-135m", "max_batch": mb}, threads=threads)
            bar = _C.Progress(f"round {chunk_chars} chars, batch {mb}", len(jobs), "job")
            t = time.perf_counter()
            for s in range(0, len(jobs), mb):  # the client's own split, in steps the bar can show
                cli.chat(jobs[s:s + mb], max_tokens=job_tokens, json_schema=schema)
                bar.update(min(mb, len(jobs) - s))
            times[mb] = time.perf_counter() - t
            bar.finish()
        k = len(jobs)
        rows += [(f"MinionS round {label}: {k} jobs, batched by 8: jobs/s", f"{k / times[8]:.2f}"),
                 (f"MinionS round {label}: one at a time: jobs/s", f"{k / times[1]:.2f}"),
                 (f"MinionS round {label}: batched / one at a time", f"{times[1] / times[8]:.2f}x")]

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
          f"`python benchmarks/bench_minions.py --generations {args.generations} --threads {threads}` on "
          f"{platform.processor() or platform.machine()}, {_C.available_cores()} cores, torch {__import__('torch').__version__}.", "",
          "| measure | value |", "| --- | ---: |"] + [f"| {k} | {v} |" for k, v in rows]
    (out / "minions.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
