"""Tokenizers and chat templates (both in C++; this module only finds files by name).

    >>> tok = tandem.text.load_tokenizer("smollm2-135m")     # short name, .gguf, tokenizer.json/.model or HF dir
    >>> ids = tok.encode("Hello world"); tok.decode(ids)
    >>> tandem.text.chat_prompt(tok, [{"role": "user", "content": "Hi"}])   # the checkpoint's own template
    >>> tandem.text.chat_prompt(tok, msgs, template="gemma")                # or a family by name
"""
from __future__ import annotations

from typing import Sequence

from . import _C

Message = dict[str, str]


def load_tokenizer(name_or_path: str) -> _C.Tokenizer:
    """A tokenizer by model short name, .gguf file (its vocabulary), tokenizer.json, SentencePiece
    tokenizer.model or HF directory."""
    from .models import resolve

    return _C.load_tokenizer(str(resolve(name_or_path)))


def chat_template(tokenizer: _C.Tokenizer | str, template: str = "auto") -> _C.ChatTemplate:
    """The chat template `template` (a family: llama3, llama2, mistral, chatml, gemma, phi3, plain)
    or, for "auto", the family of the Jinja template the checkpoint carries."""
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    return _C.chat_template(template, tok)


def chat_prompt(tokenizer: _C.Tokenizer | str, messages: Sequence[Message], system: str | None = None,
                template: str = "auto") -> str:
    """The prompt text for `messages` (after BOS, which the tokenizer adds as an id), ending where
    the assistant's reply begins; `system` is prepended as a system turn."""
    msgs = ([{"role": "system", "content": system}] if system is not None else []) + list(messages)
    return chat_template(tokenizer, template).render(msgs)
