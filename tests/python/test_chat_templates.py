"""Chat templates: tandem's C++ rendering of each family against transformers'
apply_chat_template on that family's Jinja template (tests/fixtures/chat_templates), read from
the checkpoint's tokenizer_config.json as a user's checkpoint carries it. tandem's text starts
after BOS (the tokenizer adds BOS as an id), so the template's leading BOS text is removed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")

import tandem  # noqa: E402
from tandem import _C  # noqa: E402
from tokenizer_fixtures import llama32_dir  # noqa: E402

FIXTURES = Path(__file__).parent.parent / "fixtures" / "chat_templates"
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hi there \\n"},
     {"role": "assistant", "content": "Hello! "}, {"role": "user", "content": "2+2?"}],
]
# family fixture -> (family tandem must detect, whether the template accepts a system turn)
CASES = {"llama3": ("llama3", True), "llama3.1": ("llama3", True), "qwen2.5": ("chatml", True),
         "gemma3": ("gemma", True), "llama2": ("llama2", True), "mistral": ("mistral", False), "phi3.5": ("phi3", True)}


def checkpoint_dir(tmp_path, name):
    """A tokenizer directory (Llama 3.2's tokenizer.json; Llama 2 / Mistral get <s> and </s>) whose
    tokenizer_config.json carries the family's template."""
    d = tmp_path / name
    d.mkdir()
    shutil.copy(llama32_dir() / "tokenizer.json", d / "tokenizer.json")
    bos, eos = ("<s>", "</s>") if name in ("llama2", "mistral") else ("<|begin_of_text|>", "<|eot_id|>")
    if name in ("llama2", "mistral"):  # the markers as added tokens of a Llama 3.2 vocabulary
        tj = json.loads((d / "tokenizer.json").read_text())
        for i, t in enumerate((bos, eos)):
            tj["added_tokens"][10 + i]["content"] = t
        (d / "tokenizer.json").write_text(json.dumps(tj))
    cfg = {"chat_template": (FIXTURES / f"{name}.jinja").read_text().rstrip("\\n"), "bos_token": bos, "eos_token": eos,
           "tokenizer_class": "PreTrainedTokenizerFast"}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("name", list(CASES))
def test_rendering_matches_apply_chat_template(tmp_path, name):
    family, system_ok = CASES[name]
    d = checkpoint_dir(tmp_path, name)
    ref = transformers.AutoTokenizer.from_pretrained(str(d))
    tok = _C.load_tokenizer(str(d))
    assert _C.detect_chat_family(tok.chat_template) == family
    for msgs in CONVERSATIONS:
        if not system_ok:
            msgs = [m for m in msgs if m["role"] != "system"]
        want = ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, date_string="26 Jul 2024")
        if want.startswith(ref.bos_token):
            want = want[len(ref.bos_token):]
        assert tandem.text.chat_prompt(tok, msgs) == want


def test_unknown_template_is_an_error_naming_the_override(tmp_path):
    d = checkpoint_dir(tmp_path, "llama3")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}### {{ m.role }}: {{ m.content }}\\n{% endfor %}"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = _C.load_tokenizer(str(d))
    with pytest.raises(ValueError, match=r"chat template is of no family tandem renders .*chat_template: <family>"):
        tandem.text.chat_prompt(tok, CONVERSATIONS[0])
    # The override picks a family by name.
    assert tandem.text.chat_prompt(tok, CONVERSATIONS[0], template="chatml").startswith("<|im_start|>user")
