"""Batch-1 decode speed of tandem (float32 math, weights read from the GGUF's quantized blocks) and
llama.cpp on the same GGUF file, for each real model here: SmolLM2-135M (Q4_1) and Gemma 3 270M
(Q4_K_M: Q4_K, Q5_0, Q6_K and Q8_0 tensors). The engines are interleaved and each is measured
--repeats times (this machine is noisy); medians and ratios are reported.

    python benchmarks/bench_decode_models.py [--threads 2] [--repeats 3]

Decode rate = (NEW - 1) / (time to make NEW tokens - time to make 1). Writes
results/bench/decode_models.{csv,md}.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT, NEW = 64, 64


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def tandem_decoder(path):
    import tandem
    lm = tandem.models.load(str(path))
    prompt = [torch.randint(100, 20000, (PROMPT,)).tolist()]
    gen = lambda n: lm.model.generate(prompt, max_new_tokens=n, pad_id=0, stop_token_ids=[])  # noqa: E731
    gen(2)
    return lambda: (NEW - 1) / (timed(lambda: gen(NEW)) - timed(lambda: gen(1)))


def llamacpp_decoder(path, threads):
    from llama_cpp import Llama
    llm = Llama(model_path=str(path), n_ctx=PROMPT + NEW + 8, n_threads=threads, n_threads_batch=threads, n_batch=PROMPT,
                verbose=False)
    prompt = torch.randint(100, 20000, (PROMPT,)).tolist()

    def run(n):
        llm.reset()
        llm.eval(prompt)
        for _ in range(n - 1):
            llm.eval([llm.sample(temp=0.0)])

    run(2)
    return lambda: (NEW - 1) / (timed(lambda: run(NEW)) - timed(lambda: run(1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tandem
    rows = []
    for name in ("smollm2-135m", "gemma3-270m"):
        path = tandem.models.resolve(name)
        engines = {"tandem": tandem_decoder(path), "llama.cpp": llamacpp_decoder(path, args.threads)}
        rates = {e: [] for e in engines}
        for r in range(args.repeats):  # interleaved: a load swing hits both engines alike
            for e, fn in engines.items():
                rates[e].append(fn())
            print(f"[decode] {name} round {r + 1}/{args.repeats}: " + ", ".join(f"{e} {v[-1]:.1f}" for e, v in rates.items()),
                  file=sys.stderr, flush=True)
        for e, v in rates.items():
            rows.append({"model": name, "engine": e, "median_tok_s": statistics.median(v), "runs": " ".join(f"{x:.1f}" for x in v)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "decode_models.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["model", "engine", "median_tok_s", "runs"])
        w.writeheader()
        w.writerows(rows)
    md = ["# Batch-1 decode: tandem vs llama.cpp on the same GGUF", "",
          f"{args.threads} threads, prompt {PROMPT}, {NEW} new tokens, greedy, {args.repeats} interleaved rounds; "
          f"torch {torch.__version__}. `python benchmarks/bench_decode_models.py`", "",
          "| model | engine | median tok/s | runs |", "| --- | --- | ---: | --- |"]
    md += [f"| {r['model']} | {r['engine']} | {r['median_tok_s']:.1f} | {r['runs']} |" for r in rows]
    md += [""]
    for name in ("smollm2-135m", "gemma3-270m"):
        t = next(r["median_tok_s"] for r in rows if r["model"] == name and r["engine"] == "tandem")
        l = next(r["median_tok_s"] for r in rows if r["model"] == name and r["engine"] == "llama.cpp")
        md.append(f"- {name}: tandem / llama.cpp = {t / l:.2f}x")
    (out / "decode_models.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
