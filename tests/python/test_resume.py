"""Exact resume after kill -9, at many points of a run: an SPA cell and a FedIns simulation are
killed again and again (during a state-cache write, during the first checkpoint, between
checkpoints, during the adapter, router and predictions writes, during metrics.json), each time
rerun with the same command, and must end with the same kept step, the same metrics, the same
predictions and the same weights as one uninterrupted run.

Kills are placed deterministically with TANDEM_CRASH_AT="<file>:<n>[:before|after]" (the process
SIGKILLs itself at the n-th atomic commit of that file: "before" = data written, not yet renamed
into place; "after" = just after the rename)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_llama_checkpoint

# Keys of metrics.json that measure this process rather than the result: wall times, rates, the
# cache's hit counts and which step a run resumed from. Everything else must be identical.
VOLATILE = ("seconds", "per_second", "ms_per", "hits", "misses", "evictions", "resumed_from", "run_id")


def stable(metrics: dict | list | float | str) -> dict | list | float | str:
    if isinstance(metrics, dict):
        return {k: stable(v) for k, v in metrics.items() if not any(w in k for w in VOLATILE)}
    if isinstance(metrics, list):
        return [stable(v) for v in metrics]
    return metrics


def run(args: list[str], crash_at: str | None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TANDEM_CRASH_AT"}
    if crash_at:
        env["TANDEM_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "tandem", "run", *args, "--no-plot"], capture_output=True, text=True,
                          timeout=timeout, env=env)


def kill_chain(args_for: callable, tmp: Path, points: list[str]) -> tuple[Path, Path]:
    """Runs the reference once, then the victim killed at each point in turn, then to the end."""
    ref = run(args_for(tmp / "ref"), None)
    assert ref.returncode == 0, ref.stderr[-3000:]
    for point in points:
        p = run(args_for(tmp / "victim"), point)
        assert p.returncode == -9, f"expected a kill at {point}, got rc {p.returncode}: {p.stderr[-2000:]}"
        dirs = [d for d in (tmp / "victim").glob("*/*") if d.is_dir()]
        # (none yet when the kill came while the experiment was still being built)
        assert len(dirs) <= 1, f"one run directory across kills, found {dirs}"
        assert not any((d / "metrics.json").exists() for d in dirs), f"killed at {point} but marked finished"
    last = run(args_for(tmp / "victim"), None)
    assert last.returncode == 0, last.stderr[-3000:]
    (ref_dir,) = [d for d in (tmp / "ref").glob("*/*") if d.is_dir()]
    (vic_dir,) = [d for d in (tmp / "victim").glob("*/*") if d.is_dir()]
    return ref_dir, vic_dir


def same_files(ref_dir: Path, vic_dir: Path, names: list[str]) -> None:
    for name in names:
        assert (vic_dir / name).read_bytes() == (ref_dir / name).read_bytes(), f"{name} differs after the kills"


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return make_tiny_llama_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama")


def test_spa_cell_killed_at_seven_points_ends_identical(tiny_ckpt, tmp_path):
    # A rate high enough that the dev loss turns up: keep_best must keep an early step, which is
    # exactly what a resumed run got wrong (it read the best value back as garbage).
    ov = {"model.path": tiny_ckpt, "task.train": 12, "task.dev": 8,
          "task.test": 6, "task.max_new_tokens": 6, "train.steps": 12,
          "train.eval_every": 2, "train.log_every": 2, "train.checkpoint_every": 2,
          "train.lr": 0.05, "train.warmup_ratio": 0.0, "router_train.steps": 20,
          "device": "cpu", "threads": 1}

    def args_for(results: Path) -> list[str]:
        return [str(REPO / "configs" / "spa" / "sciq_spa.yaml"), *[f"{k}={v}" for k, v in ov.items()],
                f"state_cache.dir={results / 'cache'}", f"run.results_dir={results}"]

    points = ["*.safetensors:3:before",         # during a backbone-state cache entry
              "adapter_train.ckpt:1:before",    # during the first checkpoint (none on disk yet)
              "adapter_train.ckpt:2:after",     # between two checkpoints (a best step already kept)
              "adapter.safetensors:1:before",   # training done, adapter being written
              "router.safetensors:1:before",    # during the router write
              "predictions.jsonl:1:before",     # during the predictions
              "metrics.json:1:before"]          # during the very last write
    ref_dir, vic_dir = kill_chain(args_for, tmp_path, points)
    m_ref = json.loads((ref_dir / "metrics.json").read_text())
    m_vic = json.loads((vic_dir / "metrics.json").read_text())
    assert m_ref["train"]["kept_step"] < ov["train.steps"], "the reference must keep an early step"
    assert m_vic["train"]["resumed_from_step"] == ov["train.steps"]
    for m in (m_ref, m_vic):
        m["state_cache"].pop("dir")  # each run has its own cache directory, by design of this test
    assert stable(m_vic) == stable(m_ref)
    same_files(ref_dir, vic_dir, ["predictions.jsonl", "train_curve.csv", "adapter.safetensors", "router.safetensors",
                                  "table.csv"])
    assert (vic_dir / "log.txt").read_text().count("resuming the unfinished run") == len(points)


MINILM = REPO / "models" / "minilm-l6"


@pytest.mark.skipif(not MINILM.exists(), reason="run scripts/setup.sh (installs models)")
def test_fedins_simulation_killed_at_six_points_ends_identical(tmp_path):
    cfg = tmp_path / "fedins.yaml"
    cfg.write_text(f"extends: {REPO / 'configs' / 'fedins' / 'fedins.yaml'}\n"
                   "device: cpu\nthreads: 1\n"
                   "data: {max_examples: 300}\n"
                   "partition: {clients: 4, min_examples: 10, alpha: 1.0}\n"
                   "fed: {rounds: 4, clients_per_round: 3, local_steps: 2, batch_size: 8, eval_every: 1}\n")

    def args_for(results: Path) -> list[str]:
        return [str(cfg), f"model.cache_dir={results / 'cache'}", "model.max_tokens=32",
                f"run.results_dir={results}"]

    points = ["*.safetensors:1:before",             # during the frozen-feature cache write
              "server_state.safetensors:1:after",   # after round 1's server checkpoint
              "server_state.safetensors:2:before",  # rerun from round 1: round 2 saved, killed saving round 3
              "rounds.csv:1:before",                # all rounds done, tables being written
              "pool_choices.json:1:before",
              "metrics.json:1:before"]
    ref_dir, vic_dir = kill_chain(args_for, tmp_path, points)
    m_ref = json.loads((ref_dir / "metrics.json").read_text())
    m_vic = json.loads((vic_dir / "metrics.json").read_text())
    assert stable(m_vic) == stable(m_ref)
    same_files(ref_dir, vic_dir, ["pool_choices.json", "table.csv"])
    strip = lambda t: [line.rsplit(",", 1)[0] for line in t.splitlines()]  # the last column is seconds
    assert strip((vic_dir / "rounds.csv").read_text()) == strip((ref_dir / "rounds.csv").read_text())
