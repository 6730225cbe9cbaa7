#!/usr/bin/env python3
"""Regenerates the SPA table at small scale: one-shot, LST and SPA (plus the router ablation) on
XSum, CNN/DailyMail, CoQA and SciQ with SmolLM2-135M as the frozen backbone, every method at the
same budget (configs/spa/base.yaml: train/dev/test counts, steps, batch).

    python experiments/spa_table.py                  # the whole grid (about 40 min on 2 cores)
    python experiments/spa_table.py --tasks xsum --set task.test=8   # a quick look

Writes results/spa/table.md (paper layout, the paper's LLaMA-7B numbers beside), table.csv
(method x task), runs.csv (every metric of every run), plot.png and command.txt. Each grid cell is
a normal tandem run under results/spa_runs/<config>/grid; a finished cell is reused, an
interrupted one resumes from its last checkpoint.
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

from tables import ROOT, run_cell, write_results
sys.path.insert(0, str(ROOT / "python"))

TASKS = {"xsum": "XSum", "cnndm": "CNN-DM", "coqa": "CoQA", "sciq": "SciQ"}
METHODS = {"one_shot": "one-shot", "lst": "LST", "spa": "SPA", "spa_norouter": "SPA (no router)"}
PAPER = {  # SPA paper, LLaMA-7B (XSum / CNN-DM / CoQA / SciQ)
    "one-shot": [17.32, 22.36, 15.32, 17.21],
    "LST": [28.18, 32.15, 31.24, 23.24],
    "SPA": [35.52, 39.22, 37.30, 25.38],
}


def coqa_available(data_root: Path) -> bool:
    return (data_root / "coqa" / "coqa-train-v1.0.json").exists() and (data_root / "coqa" / "coqa-dev-v1.0.json").exists()


def spa_cell(cfg: Path, results: Path, extra: list[str]) -> dict:
    # One run directory per (cell, --set overrides): a finished cell is reused, an unfinished one
    # resumes, and other overrides get their own directory (tandem refuses to mix two configs).
    run_id = "grid" if not extra else "grid-" + hashlib.sha256("\n".join(extra).encode()).hexdigest()[:10]
    run_dir = run_cell("spa_table", cfg, results, extra, run_id=run_id)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for every cell (key.path=value)")
    ap.add_argument("--runs-dir", default="results/spa_runs")
    ap.add_argument("--out", default="results/spa")
    args = ap.parse_args()

    import pandas as pd

    data_root = Path(os.environ.get("TANDEM_DATA", ROOT.parent / "shared" / "data"))
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows, runs = {}, []
    for task in args.tasks:
        if task == "coqa" and not coqa_available(data_root):
            print("[spa_table] CoQA: no coqa/coqa-{train,dev}-v1.0.json under the data root: n/a here", flush=True)
            continue
        for method in args.methods:
            m = spa_cell(ROOT / "configs" / "spa" / f"{task}_{method}.yaml", ROOT / args.runs_dir, args.set)
            label = METHODS[method]
            rows.setdefault(label, {})[TASKS[task]] = m["primary"]
            runs.append({
                "task": TASKS[task], "method": label, "metric": m["primary_metric"], "value": m["primary"],
                **{f"score_{k}": v for k, v in m["scores"].items()},
                "adapter_use_fraction": m.get("adapter_use_fraction"),
                "cloud_to_device_bytes_per_token": m.get("cloud_to_device_bytes_per_token"),
                "device_trainable_parameters": m.get("device_trainable_parameters"),
                "train_seconds": (m.get("train") or {}).get("seconds"),
                "train_steps": (m.get("train") or {}).get("steps"),
                "dev_loss": (m.get("train") or {}).get("dev_loss"),
                "router_heldout_accuracy": (m.get("router") or {}).get("heldout_accuracy"),
                "test_examples": m["test_examples"], "seconds_total": m["seconds_total"],
            })
    wall = time.time() - t0

    cols = list(TASKS.values())
    table = pd.DataFrame([{"method": meth, **{c: rows.get(meth, {}).get(c) for c in cols}} for meth in METHODS.values() if meth in rows])
    table.to_csv(out / "table.csv", index=False, float_format="%.2f")
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False, float_format="%.4f")

    def cell(v):
        return "n/a here" if v is None or (isinstance(v, float) and v != v) else f"{v:.2f}"

    lines = ["# SPA at small scale: SmolLM2-135M-Instruct (frozen) vs the paper's LLaMA-7B", "",
             "Metric: ROUGE-L F1 x 100 (XSum, CNN-DM, SciQ generated answer), CoQA F1 x 100. "
             "Same train examples, steps and test examples for every method (configs/spa/base.yaml).", "",
             "| method | " + " | ".join(cols) + " | | paper (LLaMA-7B): " + " | ".join(cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " | --- | " + " | ".join("---:" for _ in cols) + " |"]
    for _, r in table.iterrows():
        paper = PAPER.get(r["method"])
        lines.append(f"| {r['method']} | " + " | ".join(cell(r[c]) for c in cols) + " | | " +
                     " | ".join(f"{p:.2f}" for p in paper) if paper else f"| {r['method']} | " + " | ".join(cell(r[c]) for c in cols) + " | | " + " | ".join("" for _ in cols))
        lines[-1] += " |"
    lines += ["", "Router ablation and cloud/device split:", "",
              "| task | method | adapter use | cloud->device bytes/token | device trainable params | router held-out acc. |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in runs:
        if r["method"].startswith("SPA") or r["method"] == "LST":
            acc = r["router_heldout_accuracy"]
            lines.append(f"| {r['task']} | {r['method']} | {r['adapter_use_fraction']:.3f} | {int(r['cloud_to_device_bytes_per_token'])} | "
                         f"{int(r['device_trainable_parameters'])} | {'' if acc is None else f'{acc:.3f}'} |")
    cells = sum(r["seconds_total"] for r in runs)
    lines += ["", f"Compute time of all cells (sum of their runs): {cells / 60:.1f} min on {os.cpu_count()} cores "
              f"({platform.processor() or platform.machine()}); this invocation: {wall / 60:.1f} min (finished cells are reused)."]
    write_results(out, "spa_table.py", lines)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.6))
    present = [c for c in cols if c in table.columns and table[c].notna().any()]
    width = 0.8 / max(1, len(table))
    for i, (_, r) in enumerate(table.iterrows()):
        ax.bar([j + i * width for j in range(len(present))], [r[c] if r[c] == r[c] else 0 for c in present], width, label=r["method"])
    ax.set_xticks([j + width * (len(table) - 1) / 2 for j in range(len(present))], present)
    ax.set_ylabel("ROUGE-L / F1 (x100)")
    ax.set_title("SPA grid, SmolLM2-135M frozen backbone")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "plot.png", dpi=120)
    print((out / "table.md").read_text())
    print(f"[spa_table] done in {wall / 60:.1f} min; results in {out}")


if __name__ == "__main__":
    main()
