"""Where the time of a batch-1 decode step goes, for each real model (SmolLM2-135M Q4_1, Gemma 3
270M Q4_K_M), from torch's profiler over tandem's C++ decode loop: the decoders mark their spans
(tandem::norm, qkv_proj, rope, attention, o_proj, mlp, lm_head; choose_token in the generation
loop), so each step's wall time splits into those parts, and what no span covers (step setup,
masks, dispatch, allocation) is reported as the remainder.

    python benchmarks/profile_decode.py [--threads 2] [--tokens 64]

Each model is profiled with both decode kernel paths (decode_kernels: exact, the default, and
int8_activations).

Writes results/bench/decode_profile.{csv,md}.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
SPANS = ["qkv_proj", "o_proj", "mlp", "lm_head", "attention", "norm", "rope", "choose_token"]


def profile_model(name: str, tokens: int, kernels: str) -> dict:
    import tandem
    from tandem import _C

    _C.set_decode_kernels(kernels)
    try:
        return _profile(tandem.models.load(name), name, tokens, kernels)
    finally:
        _C.set_decode_kernels("exact")


def _profiled(gen, n: int) -> tuple[float, dict, float]:
    """Wall seconds of gen(n) under the profiler, its span totals and its packed-product total."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        gen(n)
        wall = time.perf_counter() - t
    totals = {s: 0.0 for s in SPANS}
    packed = 0.0
    for e in prof.key_averages():
        key = e.key.removeprefix("tandem::")
        if key in totals:
            totals[key] += e.cpu_time_total / 1e6
        if e.key == "tandem::packed_matmul":
            packed = e.cpu_time_total / 1e6
    return wall, totals, packed


def _profile(lm, name: str, tokens: int, kernels: str) -> dict:
    prompt = [torch.randint(100, 20000, (64,)).tolist()]
    gen = lambda n: lm.model.generate(prompt, max_new_tokens=n, pad_id=0, stop_token_ids=[])  # noqa: E731
    gen(4)
    # The decode steps alone: a 1-token call (the prefill and first choice) profiled too, and its
    # wall time and span totals subtracted from the `tokens` call's.
    wall1, totals1, packed1 = _profiled(gen, 1)
    wall, totals, packed = _profiled(gen, tokens)
    steps = tokens - 1
    decode_s = wall - wall1
    row = {"model": name, "kernels": kernels, "tokens_per_s": steps / decode_s, "ms_per_token": 1000 * decode_s / steps}
    for s in SPANS:
        row[s] = 1000 * (totals[s] - totals1[s]) / steps
    row["packed_matmul_total"] = 1000 * (packed - packed1) / steps
    row["other"] = row["ms_per_token"] - sum(row[s] for s in SPANS)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from bench_decode_models import bandwidth_gbs  # the same meter as the speed tables

    bw = bandwidth_gbs()
    rows = [profile_model(n, args.tokens, k) for n in ("smollm2-135m", "gemma3-270m") for k in ("exact", "int8_activations")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["model", "kernels", "tokens_per_s", "ms_per_token", *SPANS, "other", "packed_matmul_total"]
    with open(out / "decode_profile.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
    md = ["# Where a batch-1 decode step goes (ms per token)", "",
          f"`python benchmarks/profile_decode.py` ({args.threads} threads, prompt 64, {args.tokens} new tokens, torch "
          f"{torch.__version__}; the profiler itself adds some time). Spans are tandem's own (decoder_common.h "
          "TANDEM_SPAN); `other` is what no span covers: the loop's step setup, masks, dispatch and allocation. "
          "Batch-1 steps of a packed model take the team step (team_step.cpp: both threads in one parallel region "
          "per step), whose spans the first thread times, barrier waits included; its `attention` span holds the "
          "q/k norms, RoPE and the cache write too (`rope` then reads 0). "
          "The last column sums the packed_matmul calls, which the team step's products are not (there it holds "
          f"the head alone). Read bandwidth in this run (1 GiB): {bw:.1f} GB/s.", "",
          "| model | kernels | tok/s | ms/token | " + " | ".join(SPANS) + " | other | (packed matmuls within) |",
          "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in SPANS) + " | ---: | ---: |"]
    for r in rows:
        md.append(f"| {r['model']} | {r['kernels']} | {r['tokens_per_s']:.1f} | {r['ms_per_token']:.2f} | " +
                  " | ".join(f"{r[s]:.2f}" for s in SPANS) + f" | {r['other']:.2f} | {r['packed_matmul_total']:.2f} |")
    md += ["", "Share of the step in matrix products (qkv_proj + o_proj + mlp + lm_head):", ""]
    for r in rows:
        mm = sum(r[s] for s in ("qkv_proj", "o_proj", "mlp", "lm_head"))
        md.append(f"- {r['model']} ({r['kernels']}): {100 * mm / r['ms_per_token']:.0f}% ({mm:.2f} of {r['ms_per_token']:.2f} ms)")
    before = out / "decode_profile_before.csv"
    if before.exists():  # the profile of commit 874eb61, kept for comparison
        with open(before) as f:
            old = {r["model"]: r for r in csv.DictReader(f)}
        md += ["", "Against the profile before the packed products used both cores (they ran serially: built "
               "without OpenMP, at::parallel_for did not split) and before q|k|v and gate|up were read as one stacked "
               "product (decode_profile_before.md). That profile was taken on another day; this shared machine's "
               "speed moves by up to 2-3x between days (its read bandwidth 20-78 GB/s), so the ratios below mix "
               "code and machine: the same-day comparison of the last change is in the README.", ""]
        for r in rows:
            if r["model"] in old and r["kernels"] == "exact":
                o = old[r["model"]]
                md.append(f"- {r['model']}: {float(o['ms_per_token']):.2f} -> {r['ms_per_token']:.2f} ms/token "
                          f"(qkv_proj {float(o['qkv_proj']):.2f} -> {r['qkv_proj']:.2f}, mlp {float(o['mlp']):.2f} -> "
                          f"{r['mlp']:.2f}, other {float(o['other']):.2f} -> {r['other']:.2f})")
    (out / "decode_profile.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
