"""decode_kernels: exact vs int8_activations, on the real GGUFs (speed issue, item 3).

Agreement: 20 real XSum passages x 128 tokens, read token by token through the decode path (one
row per step, the packed kernels); at every position the next-token argmax of tandem exact,
tandem int8_activations and llama.cpp (same file) are compared. Speed: batch-1 decode of the three,
interleaved, 3 rounds, medians.

    python benchmarks/check_decode_kernels.py [--passages 20] [--tokens 128] [--threads 2]

Writes results/bench/decode_kernels.{csv,md}.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def argmaxes(tm, ids):
    mask = torch.ones(1, len(ids), dtype=torch.long)
    from tandem import _C
    logits = _C._testing.forward_with_cache(tm, torch.tensor([ids]), mask, [1] * len(ids))
    return logits[0].argmax(-1).numpy()


def decode_rate(decode_seconds, new=64):
    """Tokens per second of the new - 1 decode steps after the prefill, timed by the engine's own
    loop (as bench_decode_models.py: subtracting a 1-token run let a slow prefill move the rate)."""
    return (new - 1) / decode_seconds(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = ap.parse_args()
    from llama_cpp import Llama
    import tandem
    from tandem import _C
    torch.set_num_threads(args.threads)
    docs = [json.loads(line)["document"] for line in open(tandem.data_root() / "xsum" / "test.jsonl")][: args.passages]
    rows = []
    for name in ("smollm2-135m", "gemma3-270m"):
        path = tandem.models.resolve(name).resolve()
        lm = tandem.models.load(str(path))
        llm = Llama(model_path=str(path), n_ctx=args.tokens + 8, n_batch=args.tokens + 8, logits_all=True,
                    n_threads=args.threads, verbose=False)
        same = {"exact vs int8": 0, "exact vs llama.cpp": 0, "int8 vs llama.cpp": 0}
        total = 0
        for i, doc in enumerate(docs):
            ids = lm.encode([doc])[0][: args.tokens]
            _C.set_decode_kernels("exact")
            ex = argmaxes(lm.model, ids)
            _C.set_decode_kernels("int8_activations")
            i8 = argmaxes(lm.model, ids)
            _C.set_decode_kernels("exact")
            llm.reset()
            llm.eval(ids)
            lc = np.asarray(llm.scores[: len(ids)]).argmax(-1)
            same["exact vs int8"] += int((ex == i8).sum())
            same["exact vs llama.cpp"] += int((ex == lc).sum())
            same["int8 vs llama.cpp"] += int((i8 == lc).sum())
            total += len(ids)
            print(f"[kernels] {name} passage {i + 1}/{len(docs)}", file=sys.stderr, flush=True)
        prompt = [torch.randint(100, 20000, (64,)).tolist()]
        gen = lambda n: lm.model.generate(prompt, max_new_tokens=n, pad_id=0, stop_token_ids=[])  # noqa: E731
        tandem_decode = lambda n: gen(n)["decode_seconds"]  # noqa: E731

        def llama_decode(n, p=prompt[0]):
            llm.reset()
            llm.eval(p)
            t = time.perf_counter()
            for _ in range(n - 1):
                llm.eval([llm.sample(temp=0.0)])
            return time.perf_counter() - t

        rates = {"tandem exact": [], "tandem int8_activations": [], "llama.cpp": []}
        gen(2)
        for _ in range(3):
            _C.set_decode_kernels("exact")
            rates["tandem exact"].append(decode_rate(tandem_decode))
            _C.set_decode_kernels("int8_activations")
            rates["tandem int8_activations"].append(decode_rate(tandem_decode))
            _C.set_decode_kernels("exact")
            rates["llama.cpp"].append(decode_rate(llama_decode))
        rows.append({"model": name, "positions": total, **{k: v / total for k, v in same.items()},
                     **{k: statistics.median(v) for k, v in rates.items()}})
        print(rows[-1], file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "decode_kernels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["# decode_kernels: exact vs int8_activations", "",
          f"`python benchmarks/check_decode_kernels.py` ({args.threads} threads, torch {torch.__version__}). Agreement: "
          f"next-token argmax at every position of {args.passages} XSum passages x {args.tokens} tokens read token by "
          "token through the decode path. Speed: batch-1 decode, prompt 64, 64 new tokens, 3 interleaved rounds, medians.", "",
          "| model | positions | exact = int8 | exact = llama.cpp | int8 = llama.cpp | exact tok/s | int8 tok/s | llama.cpp tok/s |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        md.append(f"| {r['model']} | {r['positions']} | {100 * r['exact vs int8']:.1f}% | {100 * r['exact vs llama.cpp']:.1f}% | "
                  f"{100 * r['int8 vs llama.cpp']:.1f}% | {r['tandem exact']:.1f} | {r['tandem int8_activations']:.1f} | "
                  f"{r['llama.cpp']:.1f} |")
    md += ["", "int8_activations covers Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K weights (every matrix of both files)."]
    (out / "decode_kernels.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
