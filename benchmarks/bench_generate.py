"""Generation speed: tandem vs HF transformers (same torch) vs llama-cpp-python, one run.

SmolLM2-135M-Instruct from the same GGUF file for every engine: tandem dequantizes it (to
float32 / bfloat16) and, in float32, decodes small batches straight from the quantized blocks
(float32 math on the exact dequantized values); transformers (5.x) keeps GGUF weights packed and
runs its own kernels
(its logits equal tandem's float32 ones: tests/python/test_real_models.py); llama.cpp runs its
native Q4_1. Prefill of 512 tokens and
decode of 128 tokens, batch 1 and 8, same thread count for all. Decode rate = 127 / (time to make
128 tokens - time to make 1), so prefill never leaks into it. Also measured: this machine's
memory bandwidth, and from it the decode ceiling (bytes of weights read per token / bandwidth).

    python benchmarks/bench_generate.py [--threads 2] [--quick]

Writes results/bench/generate.csv (engine, dtype, batch, phase, tokens_per_s) and generate.md.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench_decode_models import bandwidth_gbs  # one measurement for every speed table

ROOT = Path(__file__).resolve().parents[1]
PROMPT, NEW = 512, 128


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_tandem(path, dtype, batch, rows):
    import tandem

    lm = tandem.models.load(str(path), dtype=dtype)
    # Distinct prompts, as transformers gets: identical ones would share their prefill (tandem
    # computes a shared prompt prefix once), which is not what this table compares.
    prompts = torch.randint(100, 40000, (batch, PROMPT)).tolist()
    gen = lambda n: lm.model.generate(prompts, max_new_tokens=n, pad_id=0)  # noqa: E731
    gen(2)
    t1 = timed(lambda: gen(1), 2)
    t128 = timed(lambda: gen(NEW), 1)
    rows.append(("tandem", dtype, batch, "prefill", batch * PROMPT / t1))
    rows.append(("tandem", dtype, batch, "decode", batch * (NEW - 1) / (t128 - t1)))


def bench_transformers(path, dtype, batch, rows):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=getattr(torch, dtype)).eval()
    ids = torch.randint(100, 40000, (batch, PROMPT))

    def gen(n):
        with torch.no_grad():
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)

    gen(2)
    t1 = timed(lambda: gen(1), 2)
    t128 = timed(lambda: gen(NEW), 1)
    rows.append(("transformers", dtype, batch, "prefill", batch * PROMPT / t1))
    rows.append(("transformers", dtype, batch, "decode", batch * (NEW - 1) / (t128 - t1)))


def bench_llamacpp(path, threads, rows):
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python not installed: skipping it (pip install llama-cpp-python)", file=sys.stderr)
        return
    llm = Llama(model_path=str(path), n_ctx=PROMPT + NEW + 8, n_threads=threads, n_threads_batch=threads,
                n_batch=PROMPT, verbose=False)
    prompt = torch.randint(100, 40000, (PROMPT,)).tolist()

    def run(n):
        llm.reset()
        llm.eval(prompt)
        for _ in range(n - 1):
            llm.eval([llm.sample(temp=0.0)])  # greedy, by llama.cpp's own sampler

    run(2)
    t1 = timed(lambda: run(1), 2)
    t128 = timed(lambda: run(NEW), 1)
    rows.append(("llama.cpp", "Q4_1", 1, "prefill", PROMPT / t1))
    rows.append(("llama.cpp", "Q4_1", 1, "decode", (NEW - 1) / (t128 - t1)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="batch 1 only")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tandem
    from tandem import _C

    _C.set_threads(args.threads)
    path = tandem.models.resolve("smollm2-135m").resolve()
    rows: list[tuple] = []
    batches = [1] if args.quick else [1, 8]
    steps = [("tandem", "float32"), ("transformers", "float32"), ("tandem", "bfloat16"), ("transformers", "bfloat16")]
    total = len(steps) * len(batches) + 1
    done = 0
    start = time.time()
    for engine, dtype in steps:
        for b in batches:
            t = time.time()
            (bench_tandem if engine == "tandem" else bench_transformers)(path, dtype, b, rows)
            done += 1
            eta = (time.time() - start) / done * (total - done)
            print(f"[{done}/{total}] {engine} {dtype} batch {b}: {time.time() - t:.0f} s (ETA {eta:.0f} s)", file=sys.stderr)
    bench_llamacpp(path, args.threads, rows)
    done += 1

    bw = bandwidth_gbs()
    lm = tandem.models.load(str(path))
    params = lm.model.num_parameters()
    # Bytes of weights read per decoded token. Float32 / bfloat16: every parameter once (a tied
    # embedding is read once, as the head). tandem float32 at batch 1 reads the GGUF's quantized
    # blocks instead (packed decode), about the file's size.
    weights_read = {"float32": params * 4, "bfloat16": params * 2, "GGUF blocks": path.stat().st_size}
    for dtype, nbytes in weights_read.items():
        rows.append(("bandwidth limit", dtype, 1, "decode", bw * 1e9 / nbytes))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".generate.csv.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["engine", "dtype", "batch", "phase", "tokens_per_s"])
        for r in rows:
            w.writerow([*r[:4], f"{r[4]:.2f}"])
    os.replace(tmp, out / "generate.csv")

    def rate(engine, dtype, batch, phase):
        for r in rows:
            if r[:4] == (engine, dtype, batch, phase):
                return r[4]
        return float("nan")

    md = ["# Generation speed: SmolLM2-135M-Instruct", "",
          f"Machine: {platform.machine()}, {args.threads} threads, torch {torch.__version__}; measured read "
          f"bandwidth {bw:.1f} GB/s. Prompt {PROMPT} tokens, {NEW} new tokens, greedy.", "",
          "| engine | dtype | batch | prefill tok/s | decode tok/s |", "| --- | --- | ---: | ---: | ---: |"]
    for engine, dtype, b in sorted({r[:3] for r in rows}, key=lambda k: (k[0], k[1], k[2])):
        md.append(f"| {engine} | {dtype} | {b} | {rate(engine, dtype, b, 'prefill'):.1f} | {rate(engine, dtype, b, 'decode'):.1f} |")
    md += ["", "Ratios (decode, batch 1):", ""]
    for dtype in ("float32", "bfloat16"):
        t, h = rate("tandem", dtype, 1, "decode"), rate("transformers", dtype, 1, "decode")
        md.append(f"- {dtype}: tandem / transformers = {t / h:.2f}x")
    t32 = rate("tandem", "float32", 1, "decode")
    md.append(f"- tandem float32 reads the GGUF blocks when decoding one sequence (packed decode): "
              f"{100 * t32 / rate('bandwidth limit', 'GGUF blocks', 1, 'decode'):.0f}% of the bandwidth limit for those bytes")
    md.append(f"- tandem bfloat16 at {100 * rate('tandem', 'bfloat16', 1, 'decode') / rate('bandwidth limit', 'bfloat16', 1, 'decode'):.0f}% "
              f"of the bandwidth limit for bfloat16 weights")
    lc = rate("llama.cpp", "Q4_1", 1, "decode")
    md.append(f"- tandem float32 / llama.cpp Q4_1 = {t32 / lc:.2f}x (llama.cpp also quantizes activations to 8 bits)")
    md += ["", f"Command: `python benchmarks/bench_generate.py --threads {args.threads}`", ""]
    tmp = out / f".generate.md.tmp-{os.getpid()}"
    tmp.write_text("\n".join(md))
    os.replace(tmp, out / "generate.md")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
