#!/usr/bin/env python3
"""One federated round (FedAvg, head + SSF in the top 2 MiniLM layers): tandem's in-process
simulation against the same round written in plain PyTorch Python on HF transformers' BertModel,
same clients per round, local steps, batch size, sequence length and threads, in one run.

Two plain-PyTorch variants, to show where time goes:
  * plain_full    the usual way: every step runs all 6 frozen layers (no grad) then the SSF top
  * plain_cached  tandem's idea by hand: the frozen lower layers' states computed once per round
                  (tandem computes them once per run and keeps them)

    python benchmarks/bench_fed_round.py [--config configs/fedins/fedavg.yaml] [--threads 2]

Writes results/bench/fed_round.{csv,md}.
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
import tandem.fed as tf  # noqa: E402


def ssf_hooks(layers, ssf, H, I):
    hooks, off = [], 0

    def at(module, c):
        nonlocal off
        o = off
        off += 2 * c
        hooks.append(module.register_forward_hook(lambda m, i, out: out * ssf[o:o + c] + ssf[o + c:o + 2 * c]))

    for layer in layers:
        at(layer.attention.output.dense, H)
        at(layer.intermediate.dense, I)
        at(layer.output.dense, H)
        at(layer.output.LayerNorm, H)
    return hooks


def plain_round(model, batches, init_state, steps, lr, cached):
    """FedAvg round: each client trains head + SSF from the global state with AdamW, then a mean."""
    H, I = model.config.hidden_size, model.config.intermediate_size
    top = list(model.encoder.layer[-2:])
    lower = list(model.encoder.layer[:-2])
    new = []
    for ids, mask in batches:  # one (ids, mask) pool of examples per client
        ssf, w, b = (t.clone().requires_grad_(True) for t in init_state)
        opt = torch.optim.AdamW([ssf, w, b], lr=lr, weight_decay=0.0)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        pre = None
        if cached:
            with torch.no_grad():
                pre = model.embeddings(input_ids=ids)
                for layer in lower:
                    pre = layer(pre, attention_mask=ext)
                    pre = pre[0] if isinstance(pre, tuple) else pre
        hooks = ssf_hooks(top, ssf, H, I)
        try:
            for s in range(steps):
                sl = slice((s * 32) % len(ids), (s * 32) % len(ids) + 32)
                with torch.no_grad():
                    if cached:
                        h = pre[sl]
                    else:
                        h = model.embeddings(input_ids=ids[sl])
                        for layer in lower:
                            h = layer(h, attention_mask=ext[sl])
                            h = h[0] if isinstance(h, tuple) else h
                for layer in top:
                    h = layer(h, attention_mask=ext[sl])
                    h = h[0] if isinstance(h, tuple) else h
                m = mask[sl].unsqueeze(-1).float()
                logits = ((h * m).sum(1) / m.sum(1)) @ w.t() + b
                loss = torch.nn.functional.cross_entropy(logits, torch.randint(0, w.shape[0], (logits.shape[0],)))
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for k in hooks:
                k.remove()
        new.append([ssf.detach(), w.detach(), b.detach()])
    return [sum(x[i] for x in new) / len(new) for i in range(3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/fedins/fedavg.yaml"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    threads = args.threads or tandem._C.available_cores()
    torch.set_num_threads(threads)
    over = [f"threads={threads}", "fed.rounds=1", "fed.eval_every=1000"]
    t0 = time.perf_counter()
    fed = tf.Federation(args.config, over)
    setup_s = time.perf_counter() - t0
    d = json.loads(fed.describe())
    cfg = tandem.load_config(args.config, over)
    steps, per_round, T = cfg["fed"]["local_steps"], cfg["fed"]["clients_per_round"], cfg["model"]["max_tokens"]
    lr = cfg["fed"]["lr"]
    init = fed.global_state()

    # tandem: the round loop (train 5 clients, aggregate) without the final test evaluation.
    clients = fed.sample_clients(1)
    times = {"tandem": [], "plain_cached": [], "plain_full": []}
    for _ in range(args.repeats):
        fed.set_global_state(init)
        t = time.perf_counter()
        ups = [fed.train_client(c, 1, init) for c in clients]
        fed.aggregate(ups)
        times["tandem"].append(time.perf_counter() - t)

    from transformers import AutoTokenizer, BertModel
    mdir = ROOT / "models" / "minilm-l6"
    model = BertModel.from_pretrained(str(mdir), attn_implementation="sdpa").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(str(mdir))
    texts = [json.loads(l)["question"] for l, _ in zip(open(Path(tandem.data_root()) / "mmlu_pro" / "test.jsonl"), range(2000))]
    batches = []
    for c in clients:
        n = len(fed.partition()[c])
        enc = tok(texts[:min(n, 2000)], padding="max_length", truncation=True, max_length=T, return_tensors="pt")
        batches.append((enc["input_ids"], enc["attention_mask"]))
    for _ in range(args.repeats):
        for name, cached in (("plain_cached", True), ("plain_full", False)):
            t = time.perf_counter()
            plain_round(model, batches, init, steps, lr, cached)
            times[name].append(time.perf_counter() - t)

    best = {k: min(v) for k, v in times.items()}
    rows = [("tandem simulation (features cached once per run)", best["tandem"]),
            ("plain PyTorch + HF, lower layers once per round", best["plain_cached"]),
            ("plain PyTorch + HF, all layers every step", best["plain_full"])]
    out = ROOT / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "fed_round.csv", "w") as f:
        f.write("variant,seconds_per_round,ratio_vs_tandem\n")
        for n, s in rows:
            f.write(f"{n},{s:.3f},{s / best['tandem']:.2f}\n")
    md = [f"# One federated round: {per_round} clients x {steps} local steps, batch 32, {T} tokens, "
          f"SSF in the top 2 MiniLM-L6 layers ({threads} threads, best of {args.repeats})", "",
          "| variant | s / round | x tandem |", "| --- | ---: | ---: |"]
    md += [f"| {n} | {s:.2f} | {s / best['tandem']:.2f} |" for n, s in rows]
    md += ["", f"tandem's one-time feature pass for {d['train_examples'] + d['test_examples']} examples is part of "
           f"its {setup_s:.1f} s set-up (cached on disk after the first run).",
           "The plain variants train on random labels: the time of a step does not depend on them."]
    (out / "fed_round.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
