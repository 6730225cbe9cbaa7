"""Running experiments from Python and reading their results."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from . import _C
from ._paths import ensure_data_root_env, ensure_models_root_env
from .config import config_source, format_overrides


@dataclass
class Result:
    """What one run produced. Everything here is also on disk under `run_dir`."""

    run_dir: Path
    metrics: dict[str, Any]
    table: pd.DataFrame
    plots: list[Path] = field(default_factory=list)

    @property
    def metrics_frame(self) -> pd.DataFrame:
        """The scalar metrics as a one-row DataFrame (nested `run` info flattened)."""
        return pd.json_normalize(self.metrics)

    def read_table(self, stem: str) -> pd.DataFrame:
        """Another table the run wrote, e.g. read_table("curve")."""
        return pd.read_csv(self.run_dir / f"{stem}.csv")

    def __repr__(self) -> str:
        return f"Result(run_dir={str(self.run_dir)!r}, metrics={len(self.metrics)} keys, table={self.table.shape})"


def load_result(run_dir: str | Path) -> Result:
    """Reads a finished run directory (metrics.json marks a finished run)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    table_path = run_dir / "table.csv"
    table = pd.read_csv(table_path) if table_path.exists() else pd.DataFrame()
    plots = sorted(run_dir.glob("*.png"))
    return Result(run_dir, metrics, table, plots)


def run(
    config: str | Path | Mapping[str, Any] = "configs/default.yaml",
    overrides: Sequence[str] | None = None,
    *,
    results_dir: str | Path = "results",
    plot: bool = True,
    echo_log: bool = True,
    **kw_overrides: Any,
) -> Result:
    """Runs the experiment a config describes and returns its Result.

    `config` is a YAML path or a dict. Overrides come as "key.path=value" strings or as
    keywords: run(cfg, **{"train.lr": 3e-4}) or run(cfg, train__lr=3e-4).
    Raises ConfigError (naming file, line and key) before any work for a bad config.
    """
    ensure_data_root_env()
    ensure_models_root_env()
    source, is_text, name, base = config_source(config)
    ovs = format_overrides(overrides) + format_overrides(kw_overrides)
    run_dir, metrics_text = _C.run_experiment(source, is_text, name, ovs, base, str(results_dir), echo_log)
    result = load_result(run_dir)
    if plot:
        from .plots import plot_run

        result.plots = plot_run(result)
    return result
