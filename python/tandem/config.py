"""Configuration loading: the C++ Config layer (extends, overrides, path-aware errors)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from . import _C

ConfigError = _C.ConfigError


def format_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """Turns {"train.lr": 3e-4} (or train__lr=3e-4 keyword style) into ["train.lr=0.0003"]."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            key = key.replace("__", ".")
            text = yaml.safe_dump(value, default_flow_style=True).strip()
            if text.endswith("\n...") or text.endswith("..."):
                text = text.rsplit("...", 1)[0].strip()
            out.append(f"{key}={text}")
        return out
    return [str(o) for o in overrides]


def config_source(config: str | Path | Mapping[str, Any]) -> tuple[str, bool, str, str]:
    """(source, is_text, name, base_dir) for the C++ loader."""
    if isinstance(config, Mapping):
        return yaml.safe_dump(dict(config), sort_keys=False), True, "<dict>", "."
    return str(config), False, str(config), str(Path(config).parent)


def load_config(config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None = None) -> dict:
    """Loads a config the way `tandem run` does (extends merged, overrides applied).

    Raises ConfigError naming file, line and key path on malformed input.
    """
    source, is_text, name, base = config_source(config)
    text = _C.resolve_config(source, is_text, name, format_overrides(overrides), base)
    return yaml.safe_load(text) or {}


def explain_config(config: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | Sequence[str] | None = None) -> str:
    """Every key a run of `config` reads, with its type, default, doc and the value given here
    (a Markdown table). Nothing is loaded or run."""
    source, is_text, name, base = config_source(config)
    return _C.explain_config(source, is_text, name, format_overrides(overrides), base)
