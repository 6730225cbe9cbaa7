#!/usr/bin/env python3
"""One SPA plugin training step: tandem (C++ trainer, adapter and vocabulary projection) against
the same plugin written in plain PyTorch Python, same frozen SmolLM2-135M backbone states, same
batch, same threads, in one run. A step = plugin forward, frozen vocabulary projection,
cross-entropy, backward, gradient clipping, AdamW update.

    python benchmarks/bench_spa_step.py [--rows 480] [--steps 10] [--threads 2]

Writes results/bench/spa_step.{csv,md}. Also times generation: plain backbone decoding vs SPA
decoding with the router (router overhead) and without it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import tandem  # noqa: E402
from tandem import _C  # noqa: E402


class PlainPlugin(torch.nn.Module):
    """The SPA side plugin (parallel placement) in plain PyTorch, mirroring peft/spa/side_plugin.cpp."""

    def __init__(self, n_layers: int, hidden: int, rank: int = 64):
        super().__init__()
        self.down = torch.nn.Parameter(torch.randn(n_layers, rank, hidden) / hidden ** 0.5)
        self.mlp_in = torch.nn.Parameter(torch.randn(4 * rank, rank) / rank ** 0.5)
        self.mlp_out = torch.nn.Parameter(torch.zeros(rank, 4 * rank))
        self.up = torch.nn.Parameter(torch.zeros(hidden, rank))

    @staticmethod
    def unit_rms(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def forward(self, inputs, final_normed):
        z = sum(torch.nn.functional.gelu(self.unit_rms(h) @ self.down[i].t()) for i, h in enumerate(inputs))
        z = z + torch.nn.functional.gelu(self.unit_rms(z) @ self.mlp_in.t()) @ self.mlp_out.t()
        return final_normed + z @ self.up.t()


def plain_steps(inputs, final_normed, gold, head, warmup, steps, bf16, same_algebra=False):
    """The plain PyTorch step. `same_algebra` gives it tandem's two ideas by hand (backbone logits
    computed once, shift through the rank-r product head @ up), to show where the gap comes from."""
    plugin = PlainPlugin(len(inputs), final_normed.shape[-1])
    with torch.no_grad():
        base = (final_normed @ head.t()).squeeze(0)
    opt = torch.optim.AdamW(plugin.parameters(), lr=1e-3, weight_decay=0.0)
    t0 = None
    for s in range(warmup + steps):
        if s == warmup:
            t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if same_algebra:
                z = sum(torch.nn.functional.gelu(plugin.unit_rms(h) @ plugin.down[i].t()) for i, h in enumerate(inputs))
                z = z + torch.nn.functional.gelu(plugin.unit_rms(z) @ plugin.mlp_in.t()) @ plugin.mlp_out.t()
                logits = (base + z.squeeze(0) @ (head @ plugin.up).t()).float()
            else:
                hidden = plugin(inputs, final_normed)
                logits = (hidden @ head.t()).float().squeeze(0)  # the frozen (tied) vocabulary projection
            loss = torch.nn.functional.cross_entropy(logits, gold)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plugin.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - t0) / steps, loss.item()


def decode_section(args) -> list[str]:
    """Decode cost per batch step on the same zero-shot XSum prompts: the frozen backbone alone,
    SPA with the plugin at every step (no router), and SPA with the trained router. The three
    cases are interleaved and repeated (`--decode-repeats`); the table gives medians."""
    import statistics
    small = {"task.train": 32, "task.dev": 16, "train.steps": 20,
             "router_train.steps": 60, "train.eval_every": 10, "train.log_every": 10, "train.checkpoint_every": 0,
             "task.max_new_tokens": 32, "threads": args.threads}
    cases = [("backbone alone", "xsum_one_shot", {"experiment.method": "zero_shot"}),
             ("SPA, no router", "xsum_spa_norouter", {}), ("SPA + router", "xsum_spa", {})]
    lines = ["", f"## Decoding: cost per batch step (same zero-shot prompts, prefill excluded; median of {args.decode_repeats} interleaved repeats)", "",
             "| batch | backbone alone ms | SPA no router ms | SPA + router ms | router overhead vs backbone | SPA+router total overhead | repeats (ms) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    rows = []
    for batch, test in ((1, 4), (8, 8)):
        t = {label: [] for label, _, _ in cases}
        for rep in range(args.decode_repeats):
            for label, cfg, extra in cases:
                r = tandem.run(ROOT / "configs" / "spa" / f"{cfg}.yaml", results_dir="/tmp/tandem_bench_spa", echo_log=False, plot=False,
                               **small, **{"task.test": test, "experiment.generate_batch": batch}, **extra)
                ms = r.metrics["generation"]["decode_ms_per_batch_step"]
                t[label].append(ms)
                rows.append({"batch": batch, "repeat": rep, "case": label, "decode_ms_per_batch_step": ms})
        b, a, m = (statistics.median(t[label]) for label, _, _ in cases)
        spread = "; ".join(f"{label}: " + "/".join(f"{v:.1f}" for v in t[label]) for label, _, _ in cases)
        lines.append(f"| {batch} | {b:.1f} | {a:.1f} | {m:.1f} | {100 * (m - a) / b:+.1f}% | {100 * (m - b) / b:+.1f}% | {spread} |")
        print(lines[-1], flush=True)
    import pandas as pd
    pd.DataFrame(rows).to_csv(ROOT / args.out / "spa_decode.csv", index=False, float_format="%.2f")
    return lines + ["", "Router overhead = (SPA + router - SPA no router) / backbone alone: the cost of the router's "
                    "features (both distributions) and its MLP. Total = everything the device side adds. "
                    "With an additive plugin the routed step projects the backbone state once through the head and "
                    "adds z (W U)^T from the cached rank-r product W U, as training does."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=480, help="target positions per step (8 examples x 60 tokens)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--decode-repeats", type=int, default=3, help="interleaved repeats of each decode case")
    ap.add_argument("--decode-only", action="store_true", help="only the decoding table (keeps the training table)")
    args = ap.parse_args()
    threads = args.threads or _C.available_cores()
    torch.set_num_threads(threads)
    _C.set_threads(threads)

    out = ROOT / args.out
    if args.decode_only:  # keep the committed training table, redo the decoding one
        head_md = (out / "spa_step.md").read_text().split("\n## Decoding")[0].rstrip("\n").split("\n")
        (out / "spa_step.md").write_text("\n".join(head_md + decode_section(args)) + "\n")
        print((out / "spa_step.md").read_text())
        return

    lm = tandem.models.load(args.model)
    model = lm.model
    H, L = model.hidden_size, model.num_layers
    layers = list(range(L, 0, -3))[::-1]  # the grid's plugin: every 3rd layer, the last included
    # Real backbone states: XSum text through the frozen model.
    text = " ".join(json.loads(line)["document"] for line in list(open(tandem.data_root() / "xsum" / "test.jsonl"))[:6])
    ids = torch.tensor([lm.encode([text], bos=True)[0][: args.rows]])
    with torch.no_grad():
        _, hs = model.forward(ids, None, None, True)
    inputs = [hs[l].contiguous() for l in layers]
    final_normed = _C.final_norm(model, hs[L]).contiguous()
    gold = torch.cat([ids[0, 1:], ids[0, :1]])
    head = _C.GgufFile(str(lm.path)).load("token_embd.weight", "float32")  # SmolLM2 ties the head to the embeddings
    adapter_yaml = "type: spa\nplacement: parallel\nrank: 64\nevery: 3\n"

    rows = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        t = _C._testing.time_adapter_steps(model, adapter_yaml, inputs, final_normed, gold, args.warmup, args.steps, 1e-3, bf16)
        torch.manual_seed(0)
        p, _ = plain_steps(inputs, final_normed, gold, head, args.warmup, args.steps, bf16)
        torch.manual_seed(0)
        q, _ = plain_steps(inputs, final_normed, gold, head, args.warmup, args.steps, bf16, same_algebra=True)
        prec = "bf16 autocast" if bf16 else "float32"
        rows.append({"precision": prec, "engine": "tandem (C++)", "rows": ids.shape[1], "ms_per_step": 1000 * t.seconds_per_step})
        rows.append({"precision": prec, "engine": "plain PyTorch", "rows": ids.shape[1], "ms_per_step": 1000 * p})
        rows.append({"precision": prec, "engine": "plain PyTorch, tandem's algebra", "rows": ids.shape[1], "ms_per_step": 1000 * q})
        print(f"{prec}: tandem {1000 * t.seconds_per_step:.1f} ms/step, plain PyTorch {1000 * p:.1f} ms/step "
              f"(ratio {p / t.seconds_per_step:.2f}x), plain with tandem's algebra {1000 * q:.1f}", flush=True)

    import pandas as pd
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "spa_step.csv", index=False, float_format="%.2f")
    md = ["# One SPA plugin training step: tandem vs plain PyTorch", "",
          f"SmolLM2-135M frozen states, plugin rank 64 on {len(layers)} layers, {ids.shape[1]} target rows per step, "
          f"{threads} threads, torch {torch.__version__}, same run.", "",
          "| precision | tandem ms/step | plain PyTorch ms/step | speed-up | plain PyTorch with tandem's algebra ms/step |",
          "| --- | ---: | ---: | ---: | ---: |"]
    for prec in ("float32", "bf16 autocast"):
        get = lambda e: df[(df.precision == prec) & (df.engine == e)].ms_per_step.item()
        a, b, c = get("tandem (C++)"), get("plain PyTorch"), get("plain PyTorch, tandem's algebra")
        md.append(f"| {prec} | {a:.1f} | {b:.1f} | {b / a:.2f}x | {c:.1f} |")
    md += ["", "tandem's step takes the backbone's logits with the states (the cloud sends them; the grid computes "
           "them once per example) and sends the plugin's rank-64 shift through the product (head @ up) instead of "
           "through the 49,152 x 576 head: the same loss and gradients, fewer FLOPs. The third column is plain "
           "PyTorch written with the same two ideas by hand."]
    md += decode_section(args)
    (out / "spa_step.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
