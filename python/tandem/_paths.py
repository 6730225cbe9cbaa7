"""Where tandem finds its configs and data, whatever the working directory."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path | None:
    """The source checkout this package runs from (editable installs), or None."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent.parent, Path.cwd()):
        if (cand / "configs").is_dir() and (cand / "csrc").is_dir():
            return cand
    return None


def data_root() -> Path:
    """$TANDEM_DATA if set, else ../shared/data beside the checkout (or the working directory)."""
    env = os.environ.get("TANDEM_DATA")
    if env:
        return Path(env)
    root = repo_root()
    base = root if root is not None else Path.cwd()
    return (base / ".." / "shared" / "data").resolve()


def ensure_data_root_env() -> None:
    """Makes the C++ core see the same data root as Python (it reads $TANDEM_DATA)."""
    os.environ.setdefault("TANDEM_DATA", str(data_root()))


def models_root() -> Path:
    """$TANDEM_MODELS if set, else models/ in the checkout (filled by `tandem models install`)."""
    env = os.environ.get("TANDEM_MODELS")
    if env:
        return Path(env)
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "models"


def ensure_models_root_env() -> None:
    os.environ.setdefault("TANDEM_MODELS", str(models_root()))
