"""The README's real-checkpoint commands, end to end on CPU with tiny random weights in the exact
directory layouts of the checkpoints they name: `configs/spa/xsum_spa.yaml model.path=<Llama-2-7b-hf
layout>` (SentencePiece tokenizer.json + tokenizer.model, add_bos_token, the Llama 2 chat template)
and the MinionS config with a Llama-3.2-3B-Instruct-layout local (the real Llama 3.2 tokenizer.json,
llama3 RoPE scaling, the dated Llama 3.1+ chat template, generation_config.json's three eos ids)
and the remote behind `tandem serve`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers", reason="transformers is a test requirement")

import tandem  # noqa: E402
from tandem import _C  # noqa: E402
from test_collab import free_port, wait_http  # noqa: E402
from test_tokenizer_real import sp_layouts  # noqa: E402
from tokenizer_fixtures import llama32_dir, mistral_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "tests" / "fixtures" / "chat_templates"
SMALL = {"task.train": 12, "task.dev": 8, "task.test": 6, "train.steps": 6, "train.eval_every": 3, "train.log_every": 2,
         "train.checkpoint_every": 2, "router_train.steps": 10, "task.max_new_tokens": 6, "device": "cpu"}


def tiny_llama(path: Path, **cfg) -> None:
    import torch
    torch.manual_seed(0)
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                rms_norm_eps=1e-5)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**base, **cfg})).save_pretrained(path)


@pytest.fixture(scope="module")
def llama2_hf(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "Llama-2-7b-hf"
    tiny_llama(d, vocab_size=32000, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    sp_layouts(mistral_model("v1"))["legacy"].save(str(d / "tokenizer.json"))
    shutil.copy(mistral_model("v1"), d / "tokenizer.model")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "legacy": True, "chat_template": (TEMPLATES / "llama2.jinja").read_text().strip(), "tokenizer_class": "LlamaTokenizer"}))
    return d


@pytest.fixture(scope="module")
def llama32_instruct(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "Llama-3.2-3B-Instruct"
    # The packaged tokenizer is Llama 3.2 Vision's (128,257 tokens: <|image|> added); the stand-in
    # model's table covers it (the text checkpoints' 128,256 plus one).
    tiny_llama(d, vocab_size=128257, max_position_embeddings=131072, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
               tie_word_embeddings=True, rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 8192})
    shutil.copy(llama32_dir() / "tokenizer.json", d / "tokenizer.json")
    cfg = json.loads((llama32_dir() / "tokenizer_config.json").read_text())
    cfg["chat_template"] = (TEMPLATES / "llama3.1.jinja").read_text().strip()
    cfg["eos_token"] = "<|eot_id|>"  # as the Instruct checkpoints set it
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    (d / "generation_config.json").write_text(json.dumps({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}))
    return d


def test_llama2_layout_loads_as_one_bundle(llama2_hf):
    lm = _C.load_language_model(str(llama2_hf))
    assert lm.tokenizer.prefix_ids == [1]  # add_bos_token
    assert lm.chat_template.render([{"role": "user", "content": "Hi"}]) == "[INST] Hi [/INST]"
    assert lm.stop_ids == [2]


def test_llama32_instruct_layout_loads_as_one_bundle(llama32_instruct):
    lm = tandem.models.load(str(llama32_instruct))
    assert lm.tokenizer.prefix_ids == [128000]
    assert lm.chat_prompt([{"role": "user", "content": "Hi"}]).startswith(
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>")
    assert sorted(lm.bundle.stop_ids) == [128001, 128008, 128009]
    logits = lm([[128000, 9906, 1917]])  # Python gets logits directly
    assert tuple(logits.shape) == (1, 3, 128257)


def test_tokenizer_larger_than_the_model_is_refused_at_load(tmp_path):
    tiny_llama(tmp_path / "small", vocab_size=300)
    shutil.copy(llama32_dir() / "tokenizer.json", tmp_path / "small" / "tokenizer.json")
    with pytest.raises(RuntimeError, match=r"small: the tokenizer has 128257 tokens but the model's vocabulary .* has 300"):
        _C.load_language_model(str(tmp_path / "small"))


def test_weights_without_tokenizer_files_load_and_refuse_to_tokenize(tmp_path):
    tiny_llama(tmp_path / "bare", vocab_size=300)
    lm = tandem.models.load(str(tmp_path / "bare"))
    assert tuple(lm([[1, 2, 3]]).shape) == (1, 3, 300)
    with pytest.raises(RuntimeError, match=r"bare: the checkpoint has no tokenizer files"):
        lm.tokenizer


def test_spa_config_runs_unchanged_on_a_llama2_layout(llama2_hf, tmp_path):
    res = tandem.run(REPO / "configs" / "spa" / "xsum_spa.yaml", results_dir=tmp_path / "results", echo_log=False, plot=False,
                     **{**SMALL, "model.path": str(llama2_hf), "state_cache.dir": str(tmp_path / "cache")})
    assert res.metrics["test_examples"] == 6
    preds = [json.loads(line) for line in open(Path(res.run_dir) / "predictions.jsonl")]
    assert len(preds) == 6


def test_minions_config_runs_with_a_llama32_instruct_local(llama32_instruct, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "tandem", "serve", "--model", str(llama32_instruct), "--port", str(port)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log=log)
        res = tandem.run(REPO / "configs" / "minions" / "qasper_minions.yaml", results_dir=tmp_path / "results", echo_log=False,
                         plot=False, **{"local.model": str(llama32_instruct), "remote.base_url": f"http://127.0.0.1:{port}/v1",
                                        "remote.model": str(llama32_instruct), "data.limit": 1, "device": "cpu",
                                        "protocol.rounds": 1, "protocol.jobs_per_round": 1, "protocol.job_tokens": 16,
                                        "protocol.answer_tokens": 8})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    m = res.metrics
    assert m["remote_prompt_tokens"] > 0 and m["local_prompt_tokens"] > 0
    transcripts = list((Path(res.run_dir) / "transcripts").glob("*.json"))
    assert len(transcripts) == 1 and json.loads(transcripts[0].read_text())["error"] is None
