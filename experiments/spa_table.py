#!/usr/bin/env python3
"""Regenerates the SPA paper's table at small scale: one-shot, LST (pruned from the backbone), SPA
and its variants (the authors' ladder plugin, sequential placement, no router) on XSum, CNN/DM,
CoQA and SciQ with SmolLM2-135M as the frozen backbone, every method at the same budget
(configs/spa/base.yaml), plus the paper's training-set-size analysis on XSum.

    python experiments/spa_table.py                 # the grid and the size curve (about 2 h on 2 cores)
    python experiments/spa_table.py --tasks xsum --methods spa lst --set task.test=8   # a quick look

Writes results/spa/: table.md (paper layout, the paper's LLaMA-7B numbers beside, 95% bootstrap
intervals), table.csv (method x task, interval columns), differences.md (paired bootstrap of the
orderings the paper claims), size_curve.{csv,md,png}, runs.csv, plot.png, command.txt. Each cell
is a normal tandem run under results/spa_runs/<config>/grid[-hash]; a finished cell is reused and
an interrupted one resumes from its last checkpoint.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from tables import ROOT, run_cell, write_results

TASKS = {"xsum": "XSum", "cnndm": "CNN-DM", "coqa": "CoQA", "sciq": "SciQ"}
METHODS = {"one_shot": "one-shot", "lst": "LST", "spa": "SPA", "spa_ladder": "SPA-ladder",
           "spa_sequential": "SPA sequential", "spa_norouter": "SPA (no router)"}
PAPER = {  # SPA paper, LLaMA-7B, by column
    "one-shot": dict(zip(TASKS.values(), [17.32, 22.36, 15.32, 17.21])),
    "LST": dict(zip(TASKS.values(), [28.18, 32.15, 31.24, 23.24])),
    "SPA": dict(zip(TASKS.values(), [35.52, 39.22, 37.30, 25.38])),
}
SIZES = [100, 300, 1000]          # XSum training examples for the size curve
SIZE_METHODS = ["spa", "lst"]
BOOT = 2000


def cell(task: str, method: str, runs_dir: Path, extra: list[str]) -> tuple[dict, list[dict]]:
    """Runs (or reuses) one cell; returns its metrics and per-example predictions."""
    # One run directory per (cell, --set overrides): other overrides get their own directory
    # (tandem refuses to mix two configs in one run directory).
    run_id = "grid" if not extra else "grid-" + hashlib.sha256("\n".join(extra).encode()).hexdigest()[:10]
    cfg = ROOT / "configs" / "spa" / f"{task}_{method}.yaml"
    run_dir = run_cell("spa_table", cfg, runs_dir, extra, run_id=run_id)
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]
    return json.loads((run_dir / "metrics.json").read_text()), preds


def clusters(preds: list[dict], task: str) -> np.ndarray:
    """Resampling units: CoQA's questions cluster by story (id "<story>_<turn>"), others by example."""
    keys = [p["id"].rsplit("_", 1)[0] if task == "coqa" else p["id"] for p in preds]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.array([index[k] for k in keys])


def boot_means(scores: np.ndarray, groups: np.ndarray, rng_seed: int = 0) -> np.ndarray:
    """BOOT bootstrap means of `scores` (resampling whole groups)."""
    rng = np.random.default_rng(rng_seed)
    n = groups.max() + 1
    sums = np.bincount(groups, weights=scores, minlength=n)
    counts = np.bincount(groups, minlength=n)
    draws = rng.integers(0, n, size=(BOOT, n))
    return sums[draws].sum(1) / counts[draws].sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for every cell (key.path=value)")
    ap.add_argument("--no-size-curve", action="store_true", help="skip the training-set-size analysis")
    ap.add_argument("--sizes", nargs="*", type=int, default=SIZES, help="XSum training-set sizes of the size curve")
    ap.add_argument("--finished-only", action="store_true",
                    help="size curve: report only the cells that already finished (start none)")
    ap.add_argument("--runs-dir", default="results/spa_runs")
    ap.add_argument("--out", default="results/spa")
    args = ap.parse_args()

    import pandas as pd

    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = ROOT / args.runs_dir
    t0 = time.time()
    table, runs, per_example = {}, [], {}
    jobs = [(t, m) for t in args.tasks for m in args.methods]
    for k, (task, method) in enumerate(jobs):
        el = time.time() - t0
        eta = "" if k == 0 else f", ETA {el / k * (len(jobs) - k) / 60:.0f} min"
        print(f"[spa_table] cell {k + 1}/{len(jobs)}: {task} {method} (elapsed {el / 60:.1f} min{eta})", flush=True)
        m, preds = cell(task, method, runs_dir, args.set)
        metric = m["primary_metric"]
        scores = np.array([p["scores"][metric] for p in preds])
        groups = clusters(preds, task)
        per_example[(task, method)] = (scores, groups, [p["id"] for p in preds])
        bm = boot_means(scores, groups)
        label, col = METHODS[method], TASKS[task]
        table.setdefault(label, {})[col] = (scores.mean(), np.percentile(bm, 2.5), np.percentile(bm, 97.5))
        train = m.get("train") or {}
        runs.append({
            "task": col, "method": label, "metric": metric, "value": scores.mean(),
            "ci_low": np.percentile(bm, 2.5), "ci_high": np.percentile(bm, 97.5),
            **{f"score_{k}": v for k, v in m["scores"].items()},
            "test_examples": len(preds), "test_units": int(groups.max() + 1),
            "adapter_use_fraction": m.get("adapter_use_fraction"),
            "cloud_to_device_bytes_per_token": m.get("cloud_to_device_bytes_per_token"),
            "device_trainable_parameters": m.get("device_trainable_parameters"),
            "train_examples": m.get("train_examples"), "train_steps": train.get("steps"),
            "kept_step": train.get("kept_step"), "kept_dev_loss": train.get("kept_dev_loss"),
            "dev_loss_backbone": train.get("dev_loss_backbone"),
            "router_heldout_accuracy": (m.get("router") or {}).get("heldout_accuracy"),
            "decode_ms_per_batch_step": (m.get("generation") or {}).get("decode_ms_per_batch_step"),
            "seconds_total": m["seconds_total"],
            "resumed_from_step": train.get("resumed_from_step", 0),
        })
        pd.DataFrame(runs).to_csv(out / "runs.csv", index=False, float_format="%.4f")

    cols = [TASKS[t] for t in args.tasks]
    rows = []
    for meth in (METHODS[m] for m in args.methods):
        r = {"method": meth}
        for c in cols:
            v = table.get(meth, {}).get(c)
            r[c] = None if v is None else v[0]
            r[f"{c}_ci_low"] = None if v is None else v[1]
            r[f"{c}_ci_high"] = None if v is None else v[2]
        rows.append(r)
    pd.DataFrame(rows).to_csv(out / "table.csv", index=False, float_format="%.2f")

    # Paired bootstrap of the paper's orderings, on the same test examples (resampling units shared).
    diffs = []
    for task in args.tasks:
        for a, b in [("spa", "lst"), ("lst", "one_shot"), ("spa", "one_shot"), ("spa", "spa_sequential"),
                     ("spa", "spa_norouter"), ("spa", "spa_ladder")]:
            if (task, a) not in per_example or (task, b) not in per_example:
                continue
            sa, ga, ia = per_example[(task, a)]
            sb, _, ib = per_example[(task, b)]
            assert ia == ib, f"{task}: {a} and {b} were scored on different test examples"
            bm = boot_means(sa - sb, ga)
            lo, hi = np.percentile(bm, 2.5), np.percentile(bm, 97.5)
            diffs.append({"task": TASKS[task], "comparison": f"{METHODS[a]} - {METHODS[b]}", "difference": (sa - sb).mean(),
                          "ci_low": lo, "ci_high": hi,
                          "verdict": "higher" if lo > 0 else "lower" if hi < 0 else "not separated"})
    pd.DataFrame(diffs).to_csv(out / "differences.csv", index=False, float_format="%.2f")

    write_tables(out, rows, cols, runs, diffs, [], time.time() - t0)  # the grid's table first
    plot(out, rows, cols)
    size_rows = [] if args.no_size_curve or "xsum" not in args.tasks else size_curve(runs_dir, args.set, out, args.sizes, args.finished_only)
    wall = time.time() - t0
    write_tables(out, rows, cols, runs, diffs, size_rows, wall)
    print((out / "table.md").read_text())
    print(f"[spa_table] done in {wall / 60:.1f} min; results in {out}")


def size_curve(runs_dir: Path, extra: list[str], out: Path, sizes: list[int], finished_only: bool = False) -> list[dict]:
    import pandas as pd
    rows = []
    for n in sizes:
        for method in SIZE_METHODS:
            ov = [*extra, f"task.train={n}"] if n != 300 else list(extra)
            run_id = "grid" if not ov else "grid-" + hashlib.sha256("\n".join(ov).encode()).hexdigest()[:10]
            if finished_only and not (runs_dir / f"spa_xsum_{method}" / run_id / "metrics.json").exists():
                print(f"[spa_table] size curve: XSum {method} with {n} examples not run (--finished-only)", flush=True)
                continue
            print(f"[spa_table] size curve: XSum {method} with {n} training examples", flush=True)
            m, preds = cell("xsum", method, runs_dir, ov)
            scores = np.array([p["scores"]["rougeL"] for p in preds])
            bm = boot_means(scores, clusters(preds, "xsum"))
            rows.append({"method": METHODS[method], "train_examples": m.get("train_examples"), "rougeL": scores.mean(),
                         "ci_low": np.percentile(bm, 2.5), "ci_high": np.percentile(bm, 97.5),
                         "kept_dev_loss": (m.get("train") or {}).get("kept_dev_loss")})
    rows.sort(key=lambda r: (r["method"], r["train_examples"]))
    pd.DataFrame(rows).to_csv(out / "size_curve.csv", index=False, float_format="%.3f")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for meth in dict.fromkeys(r["method"] for r in rows):
        pts = [r for r in rows if r["method"] == meth]
        x = [r["train_examples"] for r in pts]
        ax.plot(x, [r["rougeL"] for r in pts], marker="o", label=meth)
        ax.fill_between(x, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("XSum training examples")
    ax.set_ylabel("ROUGE-L (x100), 95% CI")
    ax.set_title("Training-set size, SmolLM2-135M frozen")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "size_curve.png", dpi=120)
    return rows


def fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.2f}"


def write_tables(out: Path, rows, cols, runs, diffs, size_rows, wall) -> None:
    import yaml
    base = yaml.safe_load((ROOT / "configs" / "spa" / "base.yaml").read_text())
    tr, tk = base["train"], base["task"]
    lines = ["# SPA at small scale: SmolLM2-135M-Instruct (frozen, Q4_1 GGUF) vs the paper's LLaMA-7B", "",
             "Metric: ROUGE-L F1 x 100 (XSum, CNN-DM, SciQ generated answer), CoQA F1 x 100 (official, "
             "leave-one-out over the references where a turn has several). Cells: mean [95% bootstrap interval, "
             f"{BOOT} resamples; CoQA resamples whole stories].", "",
             f"Budget, the same for every method (configs/spa/base.yaml): {tk['train']} training examples from each "
             f"task's train file, {tk['dev']} dev examples (model selection by dev loss, the router's training), "
             f"{tk['test']} final-test examples (CoQA: {tk['test'] // 4} held-out stories x 4 turns); {tr['steps']} steps "
             f"x batch {tr['batch_size']}, AdamW lr {tr['lr']}, weight decay {tr['weight_decay']}; contexts cut to "
             f"{tk['max_context_words']} words; greedy decoding.", "",
             "| method | " + " | ".join(cols) + " | | paper (LLaMA-7B): " + " | ".join(cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " | --- | " + " | ".join("---:" for _ in cols) + " |"]
    for r in rows:
        paper = PAPER.get(r["method"])
        cells = [f"{fmt(r[c])} [{fmt(r[c + '_ci_low'])}, {fmt(r[c + '_ci_high'])}]" if r[c] is not None else "n/a" for c in cols]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " | | " +
                     " | ".join(f"{paper[c]:.2f}" for c in cols) if paper else
                     f"| {r['method']} | " + " | ".join(cells) + " | | " + " | ".join("" for _ in cols))
        lines[-1] += " |"
    lines += ["", "Paired differences on the same test examples (95% paired bootstrap):", "",
              "| task | comparison | difference | 95% CI | verdict |", "| --- | --- | ---: | ---: | --- |"]
    lines += [f"| {d['task']} | {d['comparison']} | {d['difference']:+.2f} | [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}] | "
              f"{d['verdict']} |" for d in diffs]
    lines += ["", "Cloud/device split and routing:", "",
              "| task | method | adapter use | cloud->device bytes/token | device trainable params | kept step | dev loss (backbone) | router held-out acc. |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in runs:
        if r["method"] == "one-shot":
            continue
        acc = r["router_heldout_accuracy"]
        lines.append(f"| {r['task']} | {r['method']} | {r['adapter_use_fraction']:.3f} | {int(r['cloud_to_device_bytes_per_token'])} | "
                     f"{int(r['device_trainable_parameters'])} | {r['kept_step']} | {r['kept_dev_loss']:.3f} ({r['dev_loss_backbone']:.3f}) | "
                     f"{'' if acc is None or acc != acc else f'{acc:.3f}'} |")
    if size_rows:
        lines += ["", "Training-set size (XSum, same steps and test set; size_curve.png):", "",
                  "| method | train examples | ROUGE-L | 95% CI | kept dev loss |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['method']} | {r['train_examples']} | {r['rougeL']:.2f} | [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | "
                  f"{r['kept_dev_loss']:.3f} |" for r in size_rows]
        (out / "size_curve.md").write_text("\n".join(lines[lines.index("Training-set size (XSum, same steps and test set; size_curve.png):"):]) + "\n")
    cells = sum(r["seconds_total"] for r in runs)
    resumed = sum(1 for r in runs if (r.get("resumed_from_step") or 0) > 0)
    lines += ["", f"Compute time of the grid's cells (sum of their last runs): {cells / 60:.1f} min on {os.cpu_count()} cores "
              f"({platform.processor() or platform.machine()}); this invocation: {wall / 60:.1f} min (finished cells are reused)."
              + (f" {resumed} cells were last run resumed from their finished training (re-decoded): their time is that "
                 f"run's only." if resumed else "")]
    write_results(out, "spa_table.py", lines)


def plot(out: Path, rows, cols) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(cols))]
        ys = [r[c] or 0 for c in cols]
        err = [[(r[c] or 0) - (r[c + "_ci_low"] or 0) for c in cols], [(r[c + "_ci_high"] or 0) - (r[c] or 0) for c in cols]]
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=r["method"])
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(cols))], cols)
    ax.set_ylabel("ROUGE-L / F1 (x100), 95% CI")
    ax.set_title("SPA grid, SmolLM2-135M frozen backbone")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "plot.png", dpi=120)


if __name__ == "__main__":
    main()
