"""tandem: a research framework for collaborating models.

A C++17 core (libtandem, on LibTorch) does the work; this package drives it.

    >>> import tandem
    >>> result = tandem.run("configs/default.yaml", **{"train.epochs": 2})
    >>> result.table            # pandas DataFrame
    >>> result.metrics["accuracy"]

Systems: tandem.run on configs/spa, configs/minions, configs/fedins, configs/moe;
tandem.fed (Federation, launch), tandem.collab (LM clients, serve, constrained JSON),
tandem.report (one page of every committed result).
"""
from __future__ import annotations

import torch  # noqa: F401  (loads libtorch before the extension that links it)

from . import _C
from . import eval, models, text
from . import collab, fed, report, spa
from ._paths import data_root, repo_root
from .config import ConfigError, explain_config, load_config
from .registry import registry
from .results import Result, run
from .safetensors import SafetensorsError, load_safetensors, save_safetensors

__all__ = [
    "ConfigError",
    "collab",
    "fed",
    "report",
    "Result",
    "SafetensorsError",
    "data_root",
    "eval",
    "explain_config",
    "load_config",
    "load_safetensors",
    "models",
    "registry",
    "repo_root",
    "run",
    "save_safetensors",
    "text",
]
__version__ = "0.1.0"
