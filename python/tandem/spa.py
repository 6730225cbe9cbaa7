"""SPA (side-plugin adaptation, Liu et al. 2024) from Python.

A frozen backbone (the "cloud" LM) stays untouched; a small plugin (the "device" part) reads the
backbone's hidden states and produces adapted next-token logits through the backbone's own frozen
vocabulary projection; a router picks, token by token, whose distribution is used.

Train with a config (the same files the paper table uses)::

    >>> import tandem
    >>> res = tandem.spa.run("configs/spa/xsum_spa.yaml", **{"task.test": 8})   # doctest: +SKIP
    >>> res.metrics["primary"], res.metrics["adapter_use_fraction"]              # doctest: +SKIP

then load the trained run and decode new prompts with routing::

    >>> lm = tandem.spa.SideAdaptedLM.from_run(res.run_dir)                      # doctest: +SKIP
    >>> out = lm.generate(["Summarize: The council voted ..."], max_new_tokens=32) # doctest: +SKIP
    >>> out[0].text, out[0].routes        # routes: 'A' adapted, 'B' backbone, per token

Plugins (``adapter: {type: ...}``): ``spa`` (tandem's additive plugin: backbone state + a rank-r
shift, so an untrained plugin is exactly the backbone), ``spa_ladder`` (the authors' per-position
ladder of width 32 that replaces the final state), ``lst`` (Ladder Side-Tuning's side network,
pruned from the backbone). ``tandem config --explain adapter`` lists every option.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import _C

__all__ = ["run", "SideAdaptedLM", "Generation"]


def run(config: str | Path, **overrides: Any):
    """Runs an SPA config (``experiment: {type: spa}``) like ``tandem run``; returns its RunResult
    (``metrics``, ``run_dir``). Keyword overrides use dotted keys: ``run(cfg, **{"task.test": 8})``."""
    from . import run as _run
    return _run(config, **overrides)


@dataclass
class Generation:
    """One decoded prompt: the text, its token ids, and who produced each token ('A' the adapted
    distribution, 'B' the backbone's)."""
    text: str
    tokens: list[int]
    routes: str


class SideAdaptedLM:
    """A trained SPA (or LST) run, ready to decode: the run's frozen backbone with its trained
    plugin and router. Build it with :meth:`from_run`."""

    def __init__(self, handle: "_C.SideAdaptedLM", lm, run_dir: Path):
        self._handle, self._lm, self.run_dir = handle, lm, run_dir

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu", dtype: str = "float32",
                 model: str | Path | None = None) -> "SideAdaptedLM":
        """Loads ``run_dir`` (a finished ``experiment: {type: spa}`` run). The backbone is the one
        in the run's config unless ``model`` names another with the same shapes (e.g. a local copy)."""
        import yaml

        from . import models
        run_dir = Path(run_dir)
        if model is None:
            model = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["path"]
        lm = models.load(str(model), device=device, dtype=dtype)
        return cls(_C.SideAdaptedLM.load_run(str(run_dir), lm.model, device, dtype), lm, run_dir)

    @property
    def layers_read(self) -> list[int]:
        """Backbone hidden states the plugin reads (0 = embeddings)."""
        return list(self._handle.layers_read)

    def device_footprint(self) -> dict:
        """Trainable parameters and memory on the device, and the per-token state bytes."""
        return json.loads(self._handle.device_footprint())

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64, batch: int = 8,
                 chat: bool = True) -> list[Generation]:
        """Greedy routed decoding. ``chat``: wrap each prompt as a user turn of the backbone's chat
        template (as the experiments do); False: encode the text as is."""
        tok = self._lm.tokenizer
        texts = [self._lm.chat_prompt([{"role": "user", "content": p}]) if chat else p for p in prompts]
        ids = [tok.encode_for_model(t) for t in texts]
        tokens, routes, _ = self._handle.generate(ids, max_new_tokens, list(self._lm.bundle.stop_ids),
                                                  max(tok.pad_id, 0), batch)
        # A generation cut at max_new_tokens can end inside a UTF-8 sequence: replace, never fail.
        return [Generation(tok.decode_bytes(t, True).decode("utf-8", "replace").strip(), list(t), r)
                for t, r in zip(tokens, routes)]
