"""Decode speed of tandem and llama.cpp on the same GGUF file, for each real model here:
SmolLM2-135M (Q4_1) and Gemma 3 270M (Q4_K_M: Q4_K, Q5_0, Q6_K and Q8_0 tensors), at batch 1 and
batch 8 (llama.cpp: 8 sequences in one context, one llama_decode per step, as its server batches
them), plus SmolLM2 in bfloat16 (AVX512-BF16 kernels) against its bandwidth bound.

tandem's rows: `exact` (float32 math on the exact dequantized weights, AVX-512 kernels; the
default), `int8_activations` (llama.cpp's arithmetic), `portable` (the Eigen kernels a CPU
without AVX-512 runs; exact math). Every engine/setting is measured --repeats times, interleaved
(a load swing on this noisy machine hits all alike); medians, every run and every ratio are
reported. Decode rate = batch * (NEW - 1) / the time of the NEW - 1 decode steps after the prefill
(each engine times its own loop: tandem's generate reports it, and the llama.cpp loop here starts
its clock after the prompt's llama_decode). An earlier version subtracted the time of a 1-token
run from a NEW-token run; a slow prefill in one of the two then moved the rate by up to 40%.

The bandwidth bound: bytes of weights one decode step reads (every matrix once; a tied embedding
once, as the head) / the machine's read bandwidth, measured in every round beside the engines (it
moves on this shared machine) as the better of two meters (bandwidth_gbs) over 1 GiB: the memory's
rate. A step's weights (96 MB for SmolLM2) fit in part in this CPU's 260 MB L3, so the table also
gives the same-size bound: the rate of reading a buffer of the step's weight bytes again and again.

    python benchmarks/bench_decode_models.py [--threads 2] [--repeats 3] [--quick]

Writes results/bench/decode_models.{csv,md}.
"""
from __future__ import annotations

import argparse
import csv
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPT, NEW = 64, 64


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bandwidth_gbs(repeats: int = 5, nbytes: int = 1 << 30) -> float:
    """Read bandwidth (GB/s) over a buffer of `nbytes`: the better of two meters, each the median
    of `repeats` reads with every thread: torch.sum, and a streaming read that prefetches as the
    decode kernels do (_C._testing.stream_read_gbs; torch.sum alone read a 96 MB buffer slower
    than the int8 decode step streamed its weights on some days). Over 1 GiB it is the memory's
    rate; on this shared machine it moves between runs (41 to 78 GB/s on some days, 20-29 GB/s on
    others), so the decode benchmark measures it in every round, between the engines. Over the
    bytes one decode step reads (a buffer read again and again, as the step re-reads its weights)
    it is the rate at which the machine re-reads a working set that size, part of which this
    CPU's 260 MB L3 holds: the stricter bound."""
    from tandem import _C

    big = torch.randn(nbytes // 4)
    big.sum()
    rates = [big.numel() * 4 / timed(lambda: big.sum()) / 1e9 for _ in range(repeats)]
    return max(statistics.median(rates), _C._testing.stream_read_gbs(big, repeats))


def weight_bytes(path: Path, dtype: str) -> int:
    """Bytes of weights read per decode step: every 2-D tensor of the GGUF once (in its stored
    type; for bfloat16, 2 bytes per value). Norm vectors are negligible and left out."""
    import gguf

    r = gguf.GGUFReader(str(path))
    total = 0
    for t in r.tensors:
        if len(t.shape) < 2:
            continue
        total += int(t.n_elements) * 2 if dtype == "bfloat16" else int(t.n_bytes)
    return total


def tandem_decoder(path, batch, kernels="exact", dtype="float32"):
    import tandem
    from tandem import _C

    lm = tandem.models.load(str(path), dtype=dtype)
    prompts = torch.randint(100, 20000, (batch, PROMPT)).tolist()  # distinct: no shared prefill

    def settings():
        _C.set_decode_kernels("int8_activations" if kernels == "int8_activations" else "exact")
        _C.set_cpu_kernels("portable" if kernels == "portable" else "auto")

    def gen(n):
        settings()
        try:
            return lm.model.generate(prompts, max_new_tokens=n, pad_id=0, stop_token_ids=[])
        finally:
            _C.set_decode_kernels("exact")
            _C.set_cpu_kernels("auto")

    gen(2)
    return lambda: batch * (NEW - 1) / gen(NEW)["decode_seconds"], gen


_LOG_CALLBACK = []


def _silent_log(L):
    """A no-op log callback for llama.cpp, kept alive for the process (it is called from C)."""
    if not _LOG_CALLBACK:
        _LOG_CALLBACK.append(L.llama_log_callback(lambda level, text, user: None))
    return _LOG_CALLBACK[0]


class LlamaCppBatch:
    """llama.cpp through its C API: `batch` sequences in one context and one llama_decode per
    step (the prompts in one batch, then one token per sequence), greedy by argmax."""

    def __init__(self, path, batch, threads):
        import llama_cpp as L

        self.L, self.B = L, batch
        L.llama_log_set(_silent_log(L), ctypes.c_void_p(0))
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(str(path).encode(), L.llama_model_default_params())
        cp = L.llama_context_default_params()
        cp.n_ctx = batch * (PROMPT + NEW + 8)
        cp.n_batch = cp.n_ubatch = batch * PROMPT
        cp.n_seq_max = batch
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(batch * PROMPT, 0, batch)
        self.prompts = np.random.default_rng(batch).integers(100, 20000, (batch, PROMPT))

    def _decode(self, entries):
        b = self.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, out) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = int(tok), pos, 1, out
            b.seq_id[i][0] = seq
        if self.L.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def run(self, n) -> float:
        """Prefill, then n - 1 decode steps; returns the seconds of the decode steps."""
        L, B = self.L, self.B
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        self._decode([(self.prompts[s, p], p, s, p == PROMPT - 1) for s in range(B) for p in range(PROMPT)])
        t = time.perf_counter()
        rows = [s * PROMPT + PROMPT - 1 for s in range(B)]
        for step in range(n - 1):
            nxt = [int(np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, r), shape=(self.n_vocab,)).argmax()) for r in rows]
            self._decode([(nxt[s], PROMPT + step, s, True) for s in range(B)])
            rows = list(range(B))
        return time.perf_counter() - t

    def rate(self):
        return self.B * (NEW - 1) / self.run(NEW)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="SmolLM2 only, no bfloat16")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import tandem
    from tandem import _C

    _C.set_threads(args.threads)
    models = ("smollm2-135m",) if args.quick else ("smollm2-135m", "gemma3-270m")
    # (model, engine, setting, weights, batch) -> rate function
    cells = {}
    for name in models:
        path = tandem.models.resolve(name).resolve()
        for kernels in ("exact", "int8_activations", "portable"):
            cells[(name, "tandem", kernels, "GGUF blocks", 1)] = tandem_decoder(path, 1, kernels)[0]
        for kernels in ("exact", "int8_activations"):
            cells[(name, "tandem", kernels, "GGUF blocks", 8)] = tandem_decoder(path, 8, kernels)[0]
        for b in (1, 8):
            cells[(name, "llama.cpp", "native", "GGUF blocks", b)] = LlamaCppBatch(path, b, args.threads).rate
        if name == "smollm2-135m" and not args.quick:
            cells[(name, "tandem", "exact", "bfloat16", 1)] = tandem_decoder(path, 1, dtype="bfloat16")[0]
    rates = {k: [] for k in cells}
    nbytes = {}
    for name in models:
        path = tandem.models.resolve(name).resolve()
        for w in ("GGUF blocks", "bfloat16"):
            nbytes[(name, w)] = weight_bytes(path, w)
    start = time.time()
    bws = []
    same = {k: [] for k in nbytes}  # same-size stream rates per round
    for r in range(args.repeats):  # interleaved: a load swing hits every engine alike
        bws.append(bandwidth_gbs())
        for k in same:
            same[k].append(bandwidth_gbs(nbytes=nbytes[k]))
        print(f"[decode round {r + 1}] read bandwidth {bws[-1]:.1f} GB/s (1 GiB); "
              + ", ".join(f"{k[0]} {k[1]} {nbytes[k] / 1e6:.0f} MB: {v[-1]:.1f}" for k, v in same.items()),
              file=sys.stderr, flush=True)
        for i, (k, fn) in enumerate(cells.items()):
            rates[k].append(fn())
            done = r * len(cells) + i + 1
            eta = (time.time() - start) / done * (args.repeats * len(cells) - done)
            print(f"[decode {done}/{args.repeats * len(cells)}] {' '.join(map(str, k))}: {rates[k][-1]:.1f} tok/s "
                  f"(ETA {eta:.0f} s)", file=sys.stderr, flush=True)
    bw = statistics.median(bws)
    med = {k: statistics.median(v) for k, v in rates.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["model", "engine", "kernels", "weights", "batch", "median_tok_s", "runs", "bound_tok_s", "share_of_bound",
              "same_size_bound_tok_s", "share_of_same_size_bound"]
    rows = []
    for k, v in rates.items():
        name, engine, kernels, weights, b = k
        n, ws = nbytes[(name, weights)], same[(name, weights)]
        # Each run against the bandwidth measured in its own round (the bound moves with the
        # machine's load); the median of those shares.
        share = statistics.median(x * n / (g * 1e9) for x, g in zip(v, bws))
        share_same = statistics.median(x * n / (g * 1e9) for x, g in zip(v, ws))
        rows.append(dict(zip(fields, [name, engine, kernels, weights, b, f"{med[k]:.1f}", " ".join(f"{x:.1f}" for x in v),
                                      f"{bw * 1e9 / n:.1f}", f"{share:.2f}" if b == 1 else "",
                                      f"{statistics.median(ws) * 1e9 / n:.1f}", f"{share_same:.2f}" if b == 1 else ""])))
    tmp = out / f".decode_models.csv.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out / "decode_models.csv")

    md = ["# Decode: tandem vs llama.cpp on the same GGUF", "",
          f"{args.threads} threads, prompt {PROMPT}, {NEW} new tokens, greedy, {args.repeats} interleaved rounds; "
          f"torch {torch.__version__}; portable kernels here: {_C.portable_kernels_build()}. Read bandwidth measured "
          f"{bw:.1f} GB/s over 1 GiB (median of the rounds: {' '.join(f'{b:.1f}' for b in bws)}); bound = weight bytes per step / bandwidth (batch 1; the table's bound at the median bandwidth, each "
          f"share the median over rounds of a run's rate against its own round's bound). The same-size bound streams a buffer of the step's "
          f"weight bytes instead ("
          + ", ".join(f"{k[0]} {k[1]} {nbytes[k] / 1e6:.0f} MB: {statistics.median(v):.1f} GB/s" for k, v in same.items())
          + "): the rate at which this machine re-reads a working set that size, part of which its L3 holds. "
          f"`python benchmarks/bench_decode_models.py --threads {args.threads} --repeats {args.repeats}`", "",
          "| model | engine | kernels | weights | batch | median tok/s | runs | bound tok/s | share of bound | same-size bound tok/s | share of same-size bound |",
          "| --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    md += [f"| {' | '.join(str(r[f]) for f in fields)} |" for r in rows]
    md += ["", "Ratios (medians):", ""]
    for name in models:
        lc1, lc8 = med[(name, "llama.cpp", "native", "GGUF blocks", 1)], med[(name, "llama.cpp", "native", "GGUF blocks", 8)]
        for kernels in ("exact", "int8_activations", "portable"):
            md.append(f"- {name} batch 1, tandem {kernels} / llama.cpp = {med[(name, 'tandem', kernels, 'GGUF blocks', 1)] / lc1:.2f}x")
        for kernels in ("exact", "int8_activations"):
            md.append(f"- {name} batch 8, tandem {kernels} / llama.cpp batch 8 = "
                      f"{med[(name, 'tandem', kernels, 'GGUF blocks', 8)] / lc8:.2f}x")
        md.append(f"- {name} batch 1, portable / exact (AVX-512) = "
                  f"{med[(name, 'tandem', 'portable', 'GGUF blocks', 1)] / med[(name, 'tandem', 'exact', 'GGUF blocks', 1)]:.2f}x")
    md.append("")
    tmp = out / f".decode_models.md.tmp-{os.getpid()}"
    tmp.write_text("\n".join(md))
    os.replace(tmp, out / "decode_models.md")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
