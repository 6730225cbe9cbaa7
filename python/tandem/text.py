"""Tokenizers and chat templates.

    >>> tok = tandem.text.load_tokenizer("smollm2-135m")     # short name, .gguf, tokenizer.json or HF dir
    >>> ids = tok.encode("Hello world"); tok.decode(ids)
    >>> tandem.text.chat_prompt("gemma3", [{"role": "user", "content": "Hi"}])
"""
from __future__ import annotations

from typing import Callable, Sequence

from . import _C

Message = dict[str, str]


def load_tokenizer(name_or_path: str) -> _C.Tokenizer:
    """A tokenizer by model short name, .gguf file (its vocabulary), tokenizer.json or HF directory."""
    from .models import resolve

    return _C.load_tokenizer(str(resolve(name_or_path)))


def _chatml(messages: Sequence[Message], system: str | None = None) -> str:
    out = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
    for m in messages:
        out += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


def _gemma(messages: Sequence[Message], system: str | None = None) -> str:
    # Gemma has no system role: a system text opens the first user turn.
    out = ""
    for i, m in enumerate(messages):
        role = "model" if m["role"] == "assistant" else "user"
        content = m["content"]
        if i == 0 and system is not None:
            content = f"{system}\n\n{content}"
        out += f"<start_of_turn>{role}\n{content}<end_of_turn>\n"
    return out + "<start_of_turn>model\n"


def _llama2(messages: Sequence[Message], system: str | None = None) -> str:
    out = ""
    for m in messages:
        if m["role"] == "user":
            sys_part = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system is not None and not out else ""
            out += f"[INST] {sys_part}{m['content']} [/INST]"
        else:
            out += f" {m['content']} "
    return out


# Architecture -> template. SmolLM2 (llama architecture, ChatML-tuned) and Qwen2 use ChatML.
CHAT_TEMPLATES: dict[str, Callable[..., str]] = {
    "llama": _chatml, "qwen2": _chatml, "mistral": _llama2, "gemma3": _gemma, "gemma3_text": _gemma, "gpt2": _chatml,
}


def chat_prompt(architecture: str, messages: Sequence[Message], system: str | None = None) -> str:
    """The prompt text for `messages`, ending where the assistant's reply begins."""
    try:
        template = CHAT_TEMPLATES[architecture]
    except KeyError:
        raise ValueError(f"no chat template for architecture '{architecture}' (known: {', '.join(CHAT_TEMPLATES)})") from None
    return template(messages, system)
