"""Fixtures the Python tests share: datasets and configs written by the tests themselves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("TANDEM_PROGRESS", "0")

TOPICS = {"sport": ["match", "goal", "team"], "music": ["album", "song", "band"], "science": ["atom", "cell", "theory"]}
FILLER = ["the", "a", "today", "new", "report", "people", "city", "said", "after", "year"]


def write_keyword_dataset(path: Path, n: int) -> Path:
    """Texts whose label is given by one topic word among filler: learnable to ~100%."""
    labels = sorted(TOPICS)
    with open(path, "w") as f:
        for i in range(n):
            label = labels[i % 3]
            words = [FILLER[(i * k) % len(FILLER)] for k in (1, 3, 7)]
            words.insert(i % 3, TOPICS[label][i % 3])
            f.write(json.dumps({"id": f"ex{i}", "text": " ".join(words), "label": label}) + "\n")
    return path


def keyword_config(data: Path, results: Path, **extra) -> dict:
    cfg = {
        "experiment": {"type": "text_classification", "name": "kw"},
        "device": "cpu",
        "threads": 1,
        "seed": 0,
        "run": {"results_dir": str(results)},
        "data": {"type": "jsonl_text_classification", "path": str(data), "id_field": "id"},
        "features": {"type": "hashed_ngrams", "buckets": 1024, "ngram": 1},
        "classifier": {"type": "bag_linear"},
        "train": {"epochs": 6, "batch_size": 16, "lr": 0.05},
    }
    for key, value in extra.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


@pytest.fixture
def keyword_data(tmp_path) -> Path:
    return write_keyword_dataset(tmp_path / "kw.jsonl", 240)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `python -m tandem ...` (the same entry point as the `tandem` script)."""
    return subprocess.run([sys.executable, "-m", "tandem", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=timeout)


def make_tiny_llama_checkpoint(ckpt: Path, vocab_size: int = 400) -> Path:
    """A random Llama saved by transformers with a byte-level BPE tokenizer.json trained here by HF
    tokenizers (with ChatML markers as special tokens): a stand-in for a user's real HF checkpoint."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    import tandem

    texts = [json.loads(line)["question"] for line in open(tandem.data_root() / "sciq" / "test.jsonl")][:300]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    ckpt.mkdir(parents=True, exist_ok=True)
    tok.save(str(ckpt / "tokenizer.json"))
    import torch
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, eos_token_id=2)
    transformers.LlamaForCausalLM(cfg).save_pretrained(ckpt)
    return ckpt
