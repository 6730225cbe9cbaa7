"""Plots written next to a run's tables, chosen by experiment type."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

_PLOTTERS: dict[str, Callable[["Result"], list[Path]]] = {}  # noqa: F821


def plotter(experiment_type: str):
    """Registers a function that draws the plots of one experiment type."""

    def deco(fn):
        _PLOTTERS[experiment_type] = fn
        return fn

    return deco


def _save(fig, path: Path) -> list[Path]:
    """Writes `fig` to `path` atomically, closes it, and returns [path] (a plotter's result)."""
    import matplotlib.pyplot as plt

    _atomic_savefig(fig, path)
    plt.close(fig)
    return [path]


def _atomic_savefig(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def plot_run(result) -> list[Path]:
    """Draws the plots for `result` (if matplotlib is installed); returns their paths."""
    fn = _PLOTTERS.get(result.metrics.get("run", {}).get("type", ""))
    if fn is None:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return []
    return fn(result)


@plotter("text_classification")
def _plot_training_curve(result) -> list[Path]:
    import matplotlib.pyplot as plt

    curve = result.read_table("curve")
    fig, ax1 = plt.subplots(figsize=(5.5, 3.5))
    ax1.plot(curve["epoch"], curve["train_loss"], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(curve["epoch"], curve["test_accuracy"], "s-", color="tab:orange", label="test accuracy")
    ax2.set_ylabel("test accuracy", color="tab:orange")
    base = result.metrics.get("majority_baseline_accuracy")
    if base is not None:
        ax2.axhline(base, ls="--", color="gray", lw=1)
        ax2.annotate("majority label", (curve["epoch"].iloc[0], base), fontsize=8, color="gray",
                     xytext=(0, 3), textcoords="offset points")
    ax1.set_title(f"{result.metrics['run']['experiment']}: training curve")
    return _save(fig, result.run_dir / "curve.png")


@plotter("lm_multiple_choice")
def _plot_choice_accuracy(result) -> list[Path]:
    import matplotlib.pyplot as plt

    t = result.table
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    colors = ["tab:gray" if m == "chance" else "tab:blue" for m in t["method"]]
    bars = ax.barh(t["method"], t["accuracy"], color=colors)
    for bar, acc in zip(bars, t["accuracy"]):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, f"{acc:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy")
    m = result.metrics
    ax.set_title(f"{m.get('model', '')}: {m.get('questions', '')} questions")
    return _save(fig, result.run_dir / "accuracy.png")


@plotter("spa")
def _plot_spa_training(result) -> list[Path]:
    """Adapter training: train loss, dev loss, and the frozen backbone's dev loss for reference."""
    import matplotlib.pyplot as plt

    path = result.run_dir / "train_curve.csv"
    if not path.exists():  # frozen methods train nothing
        return []
    import pandas as pd

    curve = pd.read_csv(path)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(curve["step"], curve["loss"], "-", color="tab:blue", label="train loss")
    if "eval_dev_loss" in curve:
        ev = curve.dropna(subset=["eval_dev_loss"])
        ax.plot(ev["step"], ev["eval_dev_loss"], "o-", color="tab:orange", label="dev loss (adapter)")
        ax.axhline(ev["eval_dev_loss_backbone"].iloc[-1], ls="--", color="tab:gray", label="dev loss (frozen backbone)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy")
    m = result.metrics
    ax.set_title(f"{m.get('label', '')} on {m.get('task', '')}")
    ax.legend(fontsize=8)
    return _save(fig, result.run_dir / "train_curve.png")


@plotter("symbolic_moe")
def _plot_moe_accuracy(result) -> list[Path]:
    import matplotlib.pyplot as plt

    t = result.table.set_index("method")
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    t.plot.barh(ax=ax)
    ax.set_xlabel("accuracy")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    return _save(fig, result.run_dir / "accuracy.png")
