"""The GPU checks scripts/gpu_check.sh runs after building tandem against the machine's torch:
every checkpoint family on `--device` against transformers on the same device (float32 and
bfloat16 logits, KV cache, greedy text), one SPA cell, one MinionS example and the batched MoE
executor, each on the device from config. Writes checks.md and checks.json to --out.

    python benchmarks/gpu_check.py --device cuda --out results/gpu
    python benchmarks/gpu_check.py --device cpu --out /tmp/gpu_check   # the same checks, on the CPU
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

import torch  # noqa: E402
import transformers  # noqa: E402

import checkpoint_families as cf  # noqa: E402
import tandem  # noqa: E402
from tandem import _C  # noqa: E402
from conftest import make_tiny_llama_checkpoint  # noqa: E402

TOL = 1e-4


def families(device: str, tmp: Path) -> list[dict]:
    rows = []
    for fam in cf.FAMILIES:
        hf, path = cf.save(fam, tmp / "fam")
        row = {"family": fam}
        try:
            ids, mask, pos = (t.to(device) for t in cf.padded_batch())
            real = mask.bool()
            hf = hf.to(device)
            with torch.no_grad():
                ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            tm = _C.load_causal_lm(str(path), device, "float32")
            got, _ = tm.forward(ids, mask)
            row["float32_max_abs_diff"] = (got[real] - ref[real]).abs().max().item()
            chunks = [20, 1, 1, 10, 16]
            cached = _C._testing.forward_with_cache(tm, ids, mask, chunks)
            if fam != "llama_dynamic":  # dynamic RoPE's cached reference is transformers' own cached run
                row["kv_cache_max_abs_diff"] = (cached[real] - ref[real]).abs().max().item()
            prompt = torch.randint(6, cf.VOCAB, (30,), generator=torch.Generator().manual_seed(7)).tolist()
            ours = tm.generate([prompt], max_new_tokens=10, pad_id=0)["tokens"][0]
            with torch.no_grad():
                want = hf.generate(torch.tensor([prompt], device=device), max_new_tokens=10, do_sample=False,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
            row["greedy_identical"] = ours == want
            bf = _C.load_causal_lm(str(path), device, "bfloat16")
            with torch.no_grad():
                ref_bf = hf.to(torch.bfloat16)(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
            got_bf, _ = bf.forward(ids, mask)
            per_pos = (got_bf[real].float() - ref_bf[real]).abs().amax(-1)
            row["bfloat16_median_abs_diff"] = per_pos.median().item()
            row["bfloat16_scale"] = ref_bf[real].abs().max().item()
            row["ok"] = (row["float32_max_abs_diff"] <= TOL and row.get("kv_cache_max_abs_diff", 0) <= TOL and row["greedy_identical"]
                         and row["bfloat16_median_abs_diff"] <= 0.02 * row["bfloat16_scale"])
        except Exception as e:  # noqa: BLE001 - every family is reported, whatever fails
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:300])
        print(f"[gpu_check] {fam}: {row}", flush=True)
        rows.append(row)
    return rows


def spa_cell(device: str, tmp: Path, ckpt: Path) -> dict:
    small = {"task.train": 12, "task.dev": 8, "task.test": 6, "train.steps": 6, "train.eval_every": 3, "train.log_every": 2,
             "train.checkpoint_every": 2, "router_train.steps": 10, "task.max_new_tokens": 6}
    t0 = time.time()
    res = tandem.run(ROOT / "configs" / "spa" / "xsum_spa.yaml", results_dir=tmp / "spa", echo_log=False, plot=False,
                     **{**small, "model.path": str(ckpt), "device": device, "state_cache.dir": str(tmp / "cache")})
    m = res.metrics
    return {"config": "configs/spa/xsum_spa.yaml (tiny Llama checkpoint, 6 test examples)", "rougeL": m["primary"],
            "test_examples": m["test_examples"], "adapter_use_fraction": m.get("adapter_use_fraction"),
            "seconds": round(time.time() - t0, 1), "ok": m["test_examples"] == 6}


def minions_example(device: str, tmp: Path, ckpt: Path) -> dict:
    doc = ("The experiments use the Twitter fake-news corpus collected in 2019. Results are reported as macro F1. ") * 60
    data = tmp / "doc.jsonl"
    data.write_text(json.dumps({"id": "p0", "document": doc, "question": "Which corpus do the experiments use?",
                                "answers": ["the Twitter fake-news corpus"]}) + "\n")
    side = {"type": "local", "model": str(ckpt), "max_batch": 8}
    t0 = time.time()
    cfg = {"experiment": {"type": "collab_qa", "name": "minions_gpu"}, "device": device, "data": {"type": "jsonl", "path": str(data)},
           "protocol": {"type": "minions", "chunk_chars": 1500, "jobs_per_round": 1, "rounds": 1, "job_tokens": 40, "answer_tokens": 12},
           "local": side, "remote": side, "run": {"results_dir": str(tmp / "minions")}}
    res = tandem.run(cfg, plot=False)
    t = json.loads((res.run_dir / "transcripts" / "p0.json").read_text())
    return {"config": "collab_qa, protocol minions, local = remote = tiny Llama checkpoint", "error": t["error"],
            "local_events": sum(e["who"] == "local" for e in t["events"]), "remote_prompt_tokens": res.metrics["remote_prompt_tokens"],
            "seconds": round(time.time() - t0, 1), "ok": t["error"] is None and bool(t["events"])}


def moe_executor(device: str, tmp: Path, ckpts: list[Path]) -> dict:
    """The batched-by-expert executor on `device` against the same answers computed on the CPU."""
    data = tandem.data_root() / "symbolic_moe"
    test = _C.read_mc_instances(str(data / "medmcqa_test.jsonl"), "medmcqa", 8)
    enc = tiny_encoder(tmp / "encoder", [t.question for t in test])
    skills = _C.SkillExtractor(f"type: embedding\nencoder: {enc}\nper_instance: 2\nvocabulary: [medicine, anatomy, physics, law]\n")
    experts = [_C.ExpertSpec("a", str(ckpts[0])), _C.ExpertSpec("b", str(ckpts[1])), _C.ExpertSpec("a-med", str(ckpts[0]), "You are a doctor.")]
    answers = {}
    seconds = {}
    for dev in (device, "cpu"):
        pool = _C.ModelPool(0, dev, "float32")
        pipe = _C.MoePipeline(experts, skills, pool, k=2)
        t0 = time.time()
        answers[dev] = [[a.choice for a in per_expert] for per_expert in pipe.answer_all(test)]
        seconds[dev] = round(time.time() - t0, 2)
    return {"instances": len(test), "experts": len(experts), "identical_to_cpu": answers[device] == answers["cpu"],
            "seconds": seconds, "ok": answers[device] == answers["cpu"]}


def tiny_encoder(d: Path, texts: list[str]) -> str:
    """A random BERT with a WordPiece tokenizer.json (the skill tagger only needs some encoder)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})[:3000]
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=64)).save_pretrained(d)
    return str(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=str(ROOT / "results" / "gpu"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": args.device, "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version(),
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()}
    report = {"environment": env}
    ckpts = [make_tiny_llama_checkpoint(tmp / "a"), make_tiny_llama_checkpoint(tmp / "b", vocab_size=420)]
    steps = [("families", lambda: families(args.device, tmp)), ("spa_cell", lambda: spa_cell(args.device, tmp, ckpts[0])),
             ("minions_example", lambda: minions_example(args.device, tmp, ckpts[0])),
             ("moe_batched_executor", lambda: moe_executor(args.device, tmp, ckpts))]
    for name, step in steps:
        t0 = time.time()
        try:
            report[name] = step()
        except Exception as e:  # noqa: BLE001 - the report says which check failed and why
            report[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500], "trace": traceback.format_exc()[-1500:]}
        print(f"[gpu_check] {name} done in {time.time() - t0:.0f} s", flush=True)
        (out / "checks.json").write_text(json.dumps(report, indent=2))
    fams = report["families"] if isinstance(report["families"], list) else []
    md = [f"# GPU checks ({env['date']})", "", f"`bash scripts/gpu_check.sh` on {env['gpu']}, torch {env['torch']}, "
          f"transformers {env['transformers']}, device `{args.device}`.", "",
          "## Checkpoint families against transformers on the same device", "",
          "| family | float32 max abs diff | KV cache max abs diff | greedy identical | bfloat16 median abs diff (scale) | ok |",
          "|---|---|---|---|---|---|"]
    for r in fams:
        if "error" in r:
            md.append(f"| {r['family']} | error: {r['error']} | | | | no |")
            continue
        kv = f"{r['kv_cache_max_abs_diff']:.2e}" if "kv_cache_max_abs_diff" in r else "(own cached reference)"
        md.append(f"| {r['family']} | {r['float32_max_abs_diff']:.2e} | {kv} | {r['greedy_identical']} | "
                  f"{r['bfloat16_median_abs_diff']:.3f} ({r['bfloat16_scale']:.1f}) | {'yes' if r['ok'] else 'no'} |")
    for name in ("spa_cell", "minions_example", "moe_batched_executor"):
        md += ["", f"## {name}", "", "```", json.dumps(report[name], indent=2), "```"]
    (out / "checks.md").write_text("\n".join(md) + "\n")
    ok = all(r.get("ok") for r in fams) and fams and all(report[n].get("ok") for n in ("spa_cell", "minions_example", "moe_batched_executor"))
    print(f"[gpu_check] {'all checks passed' if ok else 'SOME CHECKS FAILED'}; wrote {out}/checks.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
