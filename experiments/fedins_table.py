#!/usr/bin/env python3
"""Regenerates the FedIns table at small scale: local-only, FedAvg, FedProx, FedIns and the
centralized upper bound on MMLU-Pro subject classification with a frozen MiniLM-L6 and SSF,
10 non-IID clients, 5 per round, 20 rounds; then FedIns again over torch.distributed
(gloo, 3 client processes) to show the runtimes agree.

    python experiments/fedins_table.py [--set fed.rounds=10 ...] [--no-dist]

Writes results/fedins/: table.md, table.csv, rounds.csv (accuracy per round per method),
plot.png (accuracy per round; bytes per round), command.txt.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time

from tables import ROOT, machine, markdown, run_cell, write_results
METHODS = ["local_only", "fedavg", "fedprox", "fedins", "centralized"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every method (key.path=value)")
    ap.add_argument("--methods", nargs="*", default=METHODS, help="which rows (default: all)")
    ap.add_argument("--no-dist", action="store_true", help="skip the torch.distributed rerun of FedIns")
    ap.add_argument("--out", default="results/fedins")
    ap.add_argument("--reuse", action="store_true", help="take the latest finished run of each method instead of rerunning it")
    args = ap.parse_args()
    runs = ROOT / "results" / "fedins_runs"
    t0 = time.time()
    rows, curves = [], {}
    import pandas as pd

    for m in args.methods:
        run_dir = run_cell("fedins_table", ROOT / "configs" / "fedins" / f"{m}.yaml", runs, args.set, reuse=args.reuse)
        met = json.loads((run_dir / "metrics.json").read_text())
        fed = json.loads((run_dir / "federation.json").read_text())
        curves[m] = pd.read_csv(run_dir / "rounds.csv")
        rows.append({"method": m, "accuracy": met["accuracy"], "best accuracy": met["best_accuracy"],
                     "trainable params / client": met["trainable_parameters"],
                     "MB per round": met["bytes_per_round"] / 1e6,
                     "total MB": (met["bytes_up_total"] + met["bytes_down_total"]) / 1e6,
                     "% of full fine-tuning comm": 100 * met["comm_vs_full_finetune"],
                     "s per round": met["seconds_per_round"], "run": str(run_dir.relative_to(ROOT)),
                     "_fed": fed})
    dist_line = ""
    if not args.no_dist:
        rd = runs / "fedins_dist"
        cmd = [sys.executable, "-m", "tandem", "fed", "launch", str(ROOT / "configs/fedins/fedins.yaml"), *args.set,
               "--clients", "3", "--run-dir", str(rd)]
        t1 = time.time()
        if not (args.reuse and (rd / "report.json").exists()):
            print("[fedins_table] " + " ".join(shlex.quote(c) for c in cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
        rep = json.loads((rd / "report.json").read_text())
        sim = next(r for r in rows if r["method"] == "fedins")
        dist_line = (f"FedIns over torch.distributed (gloo; server + 3 client processes, {len(rep['rounds'])} rounds, "
                     f"{sum(r['seconds'] for r in rep['rounds']) / 60:.1f} min of rounds): final accuracy {rep['final_accuracy']:.4f} vs "
                     f"{sim['accuracy']:.4f} in simulation; dropped clients: {len(rep['dropped'])}.")

    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    cols = ["method", "accuracy", "best accuracy", "trainable params / client", "MB per round", "total MB",
            "% of full fine-tuning comm", "s per round"]
    pd.DataFrame([{c: r[c] for c in cols} for r in rows]).to_csv(out / "table.csv", index=False)
    allc = pd.concat([c.assign(method=m) for m, c in curves.items()])
    allc.to_csv(out / "rounds.csv", index=False)
    fed = rows[1]["_fed"]
    fa = next(r for r in rows if r["method"] == "fedavg")
    fi = next(r for r in rows if r["method"] == "fedins")
    lines = [
        "# FedIns at small scale: MMLU-Pro subject classification (14 classes) on a frozen MiniLM-L6", "",
        f"{fed['train_examples']} training questions over {fed['clients']} clients (Dirichlet alpha 0.3 over subjects; "
        f"source collections mixed inside clients), {fed['test_examples']} test questions; SSF in the top 2 of 6 layers "
        f"({fed['ssf_parameters_per_set']} parameters per set); 5 clients per round, 20 rounds, 8 local AdamW steps of 32.",
        "", markdown([[r[c] for c in cols] for r in rows], cols, left=["method"]), "",
        f"FedIns vs FedAvg: {100 * (fi['accuracy'] - fa['accuracy']):+.2f} accuracy points at "
        f"{fi['MB per round'] / fa['MB per round']:.1f}x FedAvg's bytes per round "
        f"({fi['% of full fine-tuning comm']:.2f}% of what full fine-tuning of the encoder would send).",
        "Full fine-tuning is not run; its communication is computed from the encoder's "
        f"{fed['encoder_parameters']:,} parameters (float32, up and down, per sampled client).",
        "", dist_line, "",
        "Paper (FedIns, Tiny-ImageNet, ViT-B/16): +6.64% over the best FL baseline at under 15% of its communication.",
        "", f"Runs: results/fedins_runs/ in {(time.time() - t0) / 60:.1f} min on {machine()}."]
    write_results(out, "fedins_table.py", lines)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    for m, c in curves.items():
        c = c[c["accuracy"] >= 0]
        a1.plot(c["round"], c["accuracy"], marker="o", ms=3, label=m)
    a1.set_xlabel("round")
    a1.set_ylabel("test accuracy")
    a1.set_title("accuracy per round")
    a1.legend(fontsize=8)
    a2.bar([r["method"] for r in rows], [r["MB per round"] for r in rows], color="tab:gray")
    a2.set_yscale("symlog")
    a2.set_ylabel("MB per round (up + down)")
    a2.set_title("communication")
    a2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "plot.png", dpi=120)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
