"""What the four table scripts share: running one cell (a `tandem run` in its own process, its
run directory found or reused), Markdown tables, and the files every results folder carries
(table.md, command.txt, the machine line)."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]


def run_cell(tag: str, config: Path | str, results: Path, overrides: Sequence[str] = (), *, run_id: str | None = None,
             reuse: bool = False) -> Path:
    """Runs `config` (overrides applied) under `results`; returns its run directory.

    With `run_id` the directory is results/<experiment>/<run_id>, and a finished one is reused
    (an unfinished one resumes). Without, `reuse` takes the newest finished run if any."""
    name = _experiment_name(config, overrides)
    base = results / name
    if run_id is not None:
        run_dir = base / run_id
        if (run_dir / "metrics.json").exists():
            print(f"[{tag}] {name}: reusing finished run {run_dir}", flush=True)
            return run_dir
    elif reuse:
        done = sorted(base.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
        if done:
            return done[-1].parent
    cmd = [sys.executable, "-m", "tandem", "run", str(config), f"run.results_dir={results}",
           *([f"run.id={run_id}"] if run_id else []), *overrides, "--no-plot"]
    print(f"[{tag}] " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    if run_id is not None:
        return base / run_id
    return max((p.parent for p in base.glob("*/metrics.json")), key=lambda p: p.stat().st_mtime)


def _experiment_name(config: Path | str, overrides: Sequence[str]) -> str:
    for o in overrides:
        if o.startswith("experiment.name="):
            return o.split("=", 1)[1]
    import tandem
    exp = tandem.load_config(config).get("experiment", {})
    return exp.get("name", exp.get("type"))


def markdown(rows: Iterable[Sequence], cols: Sequence[str], fmt: Callable[[object, str], str] | None = None,
             left: Iterable[str] = ()) -> str:
    """A Markdown table: `rows` of cells in `cols` order; numbers right-aligned except `left` columns."""
    left = set(left)
    fmt = fmt or (lambda v, c: f"{v:.4f}" if isinstance(v, float) else str(v))
    out = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" if c in left else "---:" for c in cols) + " |"]
    out += ["| " + " | ".join(fmt(v, c) for v, c in zip(r, cols)) + " |" for r in rows]
    return "\n".join(out)


def machine() -> str:
    return f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})"


def write_results(out: Path, script: str, lines: Sequence[str]) -> None:
    """table.md from `lines`, and command.txt: the command that regenerates the folder."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "command.txt").write_text(f"python experiments/{script} " + " ".join(shlex.quote(a) for a in sys.argv[1:]) + "\n")
