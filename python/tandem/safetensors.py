"""safetensors through tandem's C++ reader/writer (memory-mapped, zero-copy)."""
from __future__ import annotations

from typing import Mapping

import torch

from . import _C

SafetensorsError = _C.SafetensorsError


def load_safetensors(path: str, mmap: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Returns ({name: tensor}, metadata). With mmap, tensors alias the file (copy-on-write)."""
    return _C.load_safetensors(str(path), mmap)


def save_safetensors(path: str, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Writes tensors atomically in Hugging Face's safetensors layout."""
    _C.save_safetensors(str(path), list(tensors.items()), dict(metadata or {}))
