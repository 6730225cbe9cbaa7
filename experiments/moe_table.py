#!/usr/bin/env python3
"""Regenerates the Symbolic-MoE table at small scale: accuracy per method (each expert, best single
expert, majority vote, task-level router, Symbolic-MoE, chance) on MMLU-Pro, GPQA and MedMCQA from
the paper's own splits, with 95% bootstrap intervals, plus the executors compared on the same
recruited jobs (batched by expert, batched by model with mixed-adapter batches, naive).

    python experiments/moe_table.py                       # configs/moe/symbolic_moe.yaml
    python experiments/moe_table.py --set data.test_per_dataset=10 experiment.compare_instances=20

First it trains the tandem-made experts: one SPA plugin on SmolLM2 per MMLU-Pro category group
(configs/moe/expert_<group>_plugin.yaml), on MMLU-Pro questions that are not in the Symbolic-MoE
splits. Finished runs are reused. Writes results/moe/: table.md, table.csv (intervals as columns),
differences.csv, execution.csv, per_instance.jsonl (ids, skills, recruited experts, letters; no
question text), profiles.json, plot.png and command.txt.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from tables import ROOT, machine, markdown, run_cell, write_results

GROUPS = ["stem", "health", "humanities", "business", "social"]
BOOT = 2000


def run_minutes(run_dir: Path) -> str:
    """How long the run took, from its log's last "finished in N s" line."""
    found = re.findall(r"finished in ([0-9.]+) s", (run_dir / "log.txt").read_text(errors="replace"))
    return f"{float(found[-1]) / 60:.1f} min" if found else "duration not logged"


def frame_markdown(df, digits: int = 3) -> str:
    """A DataFrame as a Markdown table (numbers right-aligned)."""
    text = [c for c in df.columns if df[c].dtype.kind not in "fi"]
    return markdown(list(df.itertuples(index=False)), list(df.columns),
                    lambda v, c: f"{v:.{digits}f}" if isinstance(v, float) else str(v), left=text)


def question_key(text: str) -> str:
    """A question's identity across files: its first 160 letters and digits, lower-cased (the
    mmlu_pro_letters task excludes by the same key)."""
    return re.sub(r"[^0-9a-z]", "", text.lower())[:160]


def overlap_count() -> tuple[int, int]:
    """(Symbolic-MoE MMLU-Pro questions, of those also in mmlu_pro/test.jsonl): what the plugin
    experts' training data leaves out."""
    import tandem
    data = tandem.data_root()
    pool = {question_key(json.loads(line)["question"]) for line in open(data / "mmlu_pro" / "test.jsonl") if line.strip()}
    moe = []
    for split in ("train", "test"):
        for line in open(data / "symbolic_moe" / f"mmlu_pro_{split}.jsonl"):
            if line.strip():
                r = json.loads(line)
                moe.append(question_key(r.get("stem") or r["question"]))
    return len(moe), sum(k in pool for k in moe)


def boot_ci(correct: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    draws = rng.integers(0, len(correct), size=(BOOT, len(correct)))
    means = correct[draws].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def interval_table(rows: list[dict], methods: list[str], datasets: list[str]):
    """Accuracy with a 95% bootstrap interval per method and dataset (and all), from the
    per-instance letters; chance = mean 1 / options (no interval)."""
    import pandas as pd
    rng = np.random.default_rng(0)
    out = []
    for meth in methods:
        rec = {"method": meth}
        for ds in datasets + ["all"]:
            sel = [r for r in rows if ds == "all" or r["dataset"] == ds]
            c = np.array([r["methods"][meth] == r["gold"] for r in sel], dtype=float)
            lo, hi = boot_ci(c, rng)
            rec[ds], rec[f"{ds}_low"], rec[f"{ds}_high"] = c.mean(), lo, hi
        out.append(rec)
    return pd.DataFrame(out)


def paired_difference(rows: list[dict], a: str, b: str, ds: str | None = None) -> tuple[float, float, float]:
    """Mean of (a right) - (b right) over the same instances, with a paired 95% bootstrap interval."""
    sel = [r for r in rows if ds is None or r["dataset"] == ds]
    d = np.array([(r["methods"][a] == r["gold"]) - (r["methods"][b] == r["gold"]) for r in sel], dtype=float)
    lo, hi = boot_ci(d, np.random.default_rng(1))
    return float(d.mean()), lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/moe/symbolic_moe.yaml")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides (key.path=value)")
    ap.add_argument("--out", default="results/moe")
    ap.add_argument("--run-dir", help="tabulate this finished run of the pool instead of running it")
    ap.add_argument("--executors-set", nargs="*", default=None,
                    help="time the executors in a separate run with these overrides (run alone on the machine, e.g. "
                         "data.validation_per_dataset=10 data.test_per_dataset=2 experiment.compare_instances=100); "
                         "default: the comparison of the main run")
    args = ap.parse_args()
    runs = ROOT / "results" / "moe_runs"
    t0 = time.time()
    # 1. The tandem-made experts: one SPA plugin per category group (reused when finished).
    expert_cmds, expert_rows = [], []
    for g in GROUPS:
        cfg = ROOT / "configs" / "moe" / f"expert_{g}_plugin.yaml"
        run = run_cell("moe_table", cfg, ROOT / "results" / "moe_experts", run_id="expert")
        em = json.loads((run / "metrics.json").read_text())
        expert_cmds.append(f"tandem run {cfg.relative_to(ROOT)}")
        tr = em.get("train", {})
        expert_rows.append({"expert": f"smollm2-{g}", "train examples": em.get("train_examples"),
                            "dev loss (backbone)": tr.get("dev_loss_backbone"), "dev loss (kept)": tr.get("kept_dev_loss"),
                            "own-split letter accuracy %": em.get("primary"), "train minutes": em.get("seconds_total", 0) / 60})
    n_moe, n_overlap = overlap_count()
    # 2. The pool, recruiting, aggregation and executors.
    run_dir = Path(args.run_dir).resolve() if args.run_dir else run_cell("moe_table", ROOT / args.config, runs, args.set)
    m = json.loads((run_dir / "metrics.json").read_text())
    # 3. The executors, on the main run's recruited jobs or in a run of their own.
    exec_dir = run_dir
    if args.executors_set is not None:
        exec_dir = run_cell("moe_table", ROOT / args.config, ROOT / "results" / "moe_exec_runs", args.executors_set, reuse=True)
    execution = json.loads((exec_dir / "metrics.json").read_text())["execution"]
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(exec_dir / "execution.csv", out / "execution.csv")
    for f in ("per_instance.jsonl", "profiles.json"):
        shutil.copy(run_dir / f, out / f)

    import pandas as pd
    rows = [json.loads(line) for line in open(run_dir / "per_instance.jsonl") if line.strip()]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(rows[0]["methods"])
    table = interval_table(rows, methods, datasets)
    chance = pd.read_csv(run_dir / "table.csv").set_index("method").loc["chance"]
    table = pd.concat([table, pd.DataFrame([{"method": "chance", **{c: chance[c] for c in datasets + ["all"]}}])], ignore_index=True)
    table.to_csv(out / "table.csv", index=False, float_format="%.4f")
    diffs = []
    for other in ("best single expert", "majority vote", "task-level router"):
        for ds in datasets + [None]:
            d, lo, hi = paired_difference(rows, "Symbolic-MoE", other, ds)
            diffs.append({"comparison": f"Symbolic-MoE - {other}", "dataset": ds or "all", "difference": d, "low": lo, "high": hi,
                          "separates": bool(lo > 0 or hi < 0)})
    diff = pd.DataFrame(diffs)
    diff.to_csv(out / "differences.csv", index=False, float_format="%.4f")

    def cell(r, c):
        v = r[c]
        lo, hi = r.get(f"{c}_low"), r.get(f"{c}_high")
        return f"{v:.3f}" if lo is None or pd.isna(lo) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
    md_rows = [[r["method"]] + [cell(r, c) for c in datasets + ["all"]] for r in table.to_dict("records")]
    main_diff = diff[(diff.comparison == "Symbolic-MoE - best single expert") & (diff.dataset == "all")].iloc[0]
    ex = pd.read_csv(exec_dir / "execution.csv")
    e = execution
    ref = e["reference"]
    ratios = [f"{k}: {v['wall_ratio_vs_' + ref]:.2f}x the wall time of {ref}, identical answers {v['identical_answer_count']}/{v['jobs']}"
              for k, v in e.items() if isinstance(v, dict) and f"wall_ratio_vs_{ref}" in v]
    n_test = {ds: sum(r["dataset"] == ds for r in rows) for ds in datasets}
    lines = ["# Symbolic-MoE at small scale: SmolLM2-135M, Gemma 3 270M and five SmolLM2 plugin experts", "",
             f"Accuracy on {len(rows)} test instances ({', '.join(f'{k} {v}' for k, v in n_test.items())}) with 95% bootstrap "
             f"intervals ({BOOT} resamples); {m['validation_instances']} validation instances build the profiles and choose the "
             f"best single expert (**{m['best_single_expert']}**) and the aggregator (**{m['aggregator']['chosen']}**, "
             f"validation accuracy {m['aggregator']['validation_accuracy']}). Answer modes: the plain models score each option's "
             f"text by log-likelihood per byte (`answer: loglik`); the plugin experts answer letters (their plugins are trained "
             f"on letters); the aggregator, in loglik mode, picks its most likely option among the recruited experts' answers.", "",
             markdown(md_rows, ["method"] + datasets + ["all"], left=["method"]), "",
             f"**Symbolic-MoE - best single expert** (paired, all {len(rows)}): {main_diff.difference:+.3f} "
             f"[{main_diff.low:+.3f}, {main_diff.high:+.3f}]: the interval "
             f"{'excludes' if main_diff.separates else 'includes'} zero. All paired differences: differences.csv.", "",
             "## Plugin experts (SmolLM2-135M + SPA plugin, one per MMLU-Pro category group)", "",
             f"Training data: MMLU-Pro (mmlu_pro/test.jsonl) minus every question of the Symbolic-MoE MMLU-Pro splits: "
             f"{n_overlap} of their {n_moe} questions occur in that file (matched by normalised question text) and are left out.", "",
             frame_markdown(pd.DataFrame(expert_rows), 2), "",
             f"## Executors on the same recruited jobs ({e['batched_by_expert']['instances'] if 'batched_by_expert' in e else ''} "
             f"{e['dataset']} test instances)", "",
             *([f"Timed in a run of their own ({exec_dir.relative_to(ROOT)}, overrides: {' '.join(args.executors_set)}), "
                f"alone on the machine; its recruiting used its own smaller validation pool.", ""]
               if exec_dir != run_dir else []),
             frame_markdown(ex, 2), "",
             "; ".join(ratios) + ".", "",
             "`batched_by_model`: every job of one backbone in one stream; a prompt asked of several plugin experts runs "
             "through the backbone once and each row through its own plugin (PEFT's mixed-adapter batches).", "",
             f"Recruited per expert on the test set: {m['recruited_counts']}.", "",
             "Paper (Symbolic-MoE, 16 experts of 3.8B-9B): +8.15% absolute over the best multi-agent baseline.", "",
             f"Run: {run_dir.relative_to(ROOT)} ({run_minutes(run_dir)}); this command {(time.time() - t0) / 60:.1f} min "
             f"on {machine()}."]
    write_results(out, "moe_table.py", lines)
    # The command that regenerates the folder from scratch: --run-dir only names where this one was tabulated from.
    argv = sys.argv[1:]
    if "--run-dir" in argv:
        i = argv.index("--run-dir")
        argv = argv[:i] + argv[i + 2:]
    regenerate = "python experiments/moe_table.py " + " ".join(shlex.quote(a) for a in argv)
    (out / "command.txt").write_text("\n".join(expert_cmds + [regenerate]) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    t = table.set_index("method")
    y = np.arange(len(t))
    err = np.array([t["all"] - t["all_low"].fillna(t["all"]), t["all_high"].fillna(t["all"]) - t["all"]])
    ax1.barh(y, t["all"], xerr=err, color="tab:blue", alpha=0.8)
    ax1.set_yticks(y, t.index, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel(f"accuracy, all {len(rows)} (95% bootstrap)")
    ax2.bar(ex["executor"], ex["wall seconds"], color=["tab:green", "tab:blue", "tab:red"][: len(ex)])
    for i, (w, l) in enumerate(zip(ex["wall seconds"], ex["model loads"])):
        ax2.text(i, w, f"{int(l)} loads", ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("wall seconds")
    ax2.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "plot.png", dpi=120)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
