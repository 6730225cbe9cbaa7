#!/usr/bin/env python3
"""Symbolic-MoE over processes: the real pool (configs/moe/symbolic_moe.yaml: SmolLM2, Gemma 3 and
the SmolLM2 plugin experts) run in one process and by `tandem moe launch --ranks 2` and `--ranks 3`
on the same instances; wall time of each, where each rank's models went, and whether every answer
(each expert's and the final one) equals the single-process run's.

    python benchmarks/bench_moe_launch.py [--test 20] [--validation 10]

Needs the plugin experts (python experiments/moe_table.py trains them). Writes
results/bench/moe_launch.{md,csv}. On one 2-core machine more processes cannot be faster (they
share the cores); the point is that the pool spreads over ranks (machines, GPUs) unchanged.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import tandem  # noqa: E402
from tandem import moe  # noqa: E402


def answers(run_dir) -> list:
    return [(r["id"], r["expert_answers"], r["final"]) for r in
            (json.loads(line) for line in open(Path(run_dir) / "per_instance.jsonl"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/moe/symbolic_moe.yaml")
    ap.add_argument("--test", type=int, default=20, help="test instances per dataset")
    ap.add_argument("--validation", type=int, default=10, help="validation instances per dataset")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args()
    ov = [f"data.test_per_dataset={args.test}", f"data.validation_per_dataset={args.validation}",
          "experiment.compare_instances=0", "experiment.compare_executors=[batched_by_expert]"]
    work = Path("/tmp/tandem_bench_moe_launch") / str(int(time.time()))
    t = time.time()
    single = tandem.run(ROOT / args.config, ov, results_dir=work / "single", echo_log=False, plot=False)
    rows = [{"runtime": "one process", "ranks": 1, "wall seconds": time.time() - t, "placement": "all on rank 0",
             "jobs per rank": "", "identical answers": True}]
    want = answers(single.run_dir)
    print(rows[-1], flush=True)
    for ranks in (2, 3):
        rep = moe.launch(str(ROOT / args.config), ranks, ov, run_dir=str(work / f"ranks{ranks}"))
        rows.append({"runtime": "tandem moe launch", "ranks": ranks, "wall seconds": rep["wall_seconds"],
                     "placement": "; ".join(f"{m}: {r}" for m, r in rep["placement"].items()),
                     "jobs per rank": "/".join(map(str, rep["jobs_per_rank"])),
                     "identical answers": answers(rep["run_dir"]) == want})
        print(rows[-1], flush=True)
    import pandas as pd
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "moe_launch.csv", index=False, float_format="%.1f")
    n = len(want)
    lines = ["# Symbolic-MoE over processes (torch.distributed, gloo)", "",
             f"The real pool of `{args.config}` on {n} test instances ({args.test} per dataset; {args.validation} validation "
             f"per dataset), the paired comparison of executors off; 2 cores; wall time includes each process's start "
             f"and model loads. Answers = every expert's letter and the final letter per instance.", "",
             "| runtime | ranks | wall seconds | models per rank | jobs per rank | identical answers |",
             "| --- | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['ranks']} | {r['wall seconds']:.1f} | {r['placement']} | {r['jobs per rank']} | "
                     f"{r['identical answers']} |")
    lines += ["", "On one 2-core machine the ranks share the same cores, so more processes add start-up and "
              "message cost rather than speed; across machines or GPUs each rank holds only its models.", "",
              f"Command: `python benchmarks/bench_moe_launch.py --test {args.test} --validation {args.validation}`"]
    (out / "moe_launch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
