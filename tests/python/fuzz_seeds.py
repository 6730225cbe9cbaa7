"""Seed corpora for tandem_fuzz, made from real files: a tiny GGUF written with the `gguf`
package in llama.cpp's layout, the safetensors and tokenizer.json of a tiny checkpoint that
transformers and HF tokenizers wrote, MiniLM's real tokenizer.json, the repository's own YAML
configs, and the JSON schemas MinionS decodes with. Shared by the fuzz test and the
reliability report (benchmarks/fuzz_report.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _tiny_gguf(path: Path, ckpt: Path) -> None:
    import gguf

    tok = json.loads((ckpt / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    V, H, F, L = len(vocab), 32, 64, 1
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if t.startswith("<|") else 1 for t, _ in vocab])
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    rng = np.random.default_rng(0)
    f32 = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float32)
    w.add_tensor("token_embd.weight", f32(V, H))
    w.add_tensor("output_norm.weight", np.ones(H, np.float32))
    for i in range(L):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(H, np.float32))
        w.add_tensor(p + "attn_q.weight", f32(H, H))
        w.add_tensor(p + "attn_k.weight", f32(H // 2, H))
        w.add_tensor(p + "attn_v.weight", f32(H // 2, H))
        w.add_tensor(p + "attn_output.weight", f32(H, H))
        w.add_tensor(p + "ffn_norm.weight", np.ones(H, np.float32))
        w.add_tensor(p + "ffn_gate.weight", f32(F, H))
        w.add_tensor(p + "ffn_up.weight", f32(F, H))
        w.add_tensor(p + "ffn_down.weight", f32(H, F))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_seeds(root: Path, ckpt: Path) -> dict[str, Path]:
    """Writes one folder of seed files per target under `root`; returns target -> folder."""
    from safetensors.numpy import save_file

    dirs = {t: root / t for t in ("gguf", "safetensors", "config", "tokenizer_json", "json_schema")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    _tiny_gguf(dirs["gguf"] / "tiny-llama.gguf", ckpt)
    shutil.copy(ckpt / "model.safetensors", dirs["safetensors"] / "tiny-llama.safetensors")
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros((0, 4), np.int64),
               "c": np.ones(5, np.float16)}, str(dirs["safetensors"] / "mixed.safetensors"), metadata={"k": "v"})
    shutil.copy(ckpt / "tokenizer.json", dirs["tokenizer_json"] / "bpe.json")
    minilm = REPO / "models" / "minilm-l6" / "tokenizer.json"
    if minilm.exists():
        shutil.copy(minilm, dirs["tokenizer_json"] / "wordpiece.json")
    for cfg in sorted(REPO.glob("configs/**/*.yaml")):
        if "extends:" not in cfg.read_text():  # a copy elsewhere could not find its base
            shutil.copy(cfg, dirs["config"] / f"{cfg.parent.name}_{cfg.name}")
    import tandem.collab as collab

    schemas = {"job_output": collab.job_output_schema(),
               "nested": {"type": "object", "properties": {
                   "a": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                   "b": {"type": "object", "properties": {"c": {"type": "boolean"}, "d": {"enum": ["x", "y"]}},
                         "required": ["c", "d"]}}, "required": ["a", "b"]}}
    for name, s in schemas.items():
        (dirs["json_schema"] / f"{name}.json").write_text(json.dumps(s, indent=1))
    return dirs
