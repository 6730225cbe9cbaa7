"""`tandem report`: one Markdown page and one self-contained HTML page with every committed
results table and plot, each with the command and configs that made it, the model and data
versions, and the machine.

    tandem report [results/] [--out results/report]
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import platform
import re
from pathlib import Path

# Which configs and data files each committed result comes from (for the provenance lines).
SECTIONS = {
    "spa": ("SPA: side-plugin adaptation with a per-token router", ["configs/spa/"],
            ["xsum/test.jsonl", "xsum/test_extra.jsonl", "cnn_dailymail/test.jsonl", "sciq/test.jsonl"], ["smollm2-135m"]),
    "minions": ("Minions: local-remote collaboration on long documents", ["configs/minions/"],
                ["qasper/test.jsonl", "financebench/questions.jsonl", "financebench/documents.jsonl"],
                ["smollm2-135m", "gemma3-270m"]),
    "fedins": ("FedIns: federated SSF pools with instance-adaptive inference", ["configs/fedins/"],
               ["mmlu_pro/test.jsonl"], ["minilm-l6"]),
    "moe": ("Symbolic-MoE: skill-based recruiting of experts", ["configs/moe/"],
            ["symbolic_moe/mmlu_pro_test.jsonl", "symbolic_moe/medmcqa_test.jsonl", "symbolic_moe/gpqa_test.jsonl"],
            ["smollm2-135m", "gemma3-270m", "minilm-l6"]),
}


def _sha(path: Path, limit: int = 1 << 62) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def machine() -> dict:
    import torch

    cpu = ""
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "os": platform.platform()}


def _versions(data: list[str], models: list[str], root: Path) -> list[str]:
    from ._paths import data_root
    from ._paths import models_root
    from .models import KNOWN_MODELS

    out = []
    for m in models:
        p = models_root() / KNOWN_MODELS[m][2] if m in KNOWN_MODELS else None
        if p is not None and p.is_file():
            out.append(f"model {m}: {p.name}, sha256 {_sha(p)}")
        elif p is not None and p.is_dir():
            w = p / "model.safetensors"
            out.append(f"model {m}: {p.name}/model.safetensors, sha256 {_sha(w) if w.exists() else 'missing'}")
    for d in data:
        p = Path(data_root()) / d
        out.append(f"data {d}: sha256 {_sha(p)}" if p.exists() else f"data {d}: not on this machine")
    return out


def collect(results: Path) -> list[dict]:
    """Every committed result: results/<system>/table.md and results/bench/*.md."""
    root = results.resolve().parent
    items = []
    for key, (title, cfgs, data, models) in SECTIONS.items():
        d = results / key
        if not (d / "table.md").exists():
            continue
        cmd = (d / "command.txt").read_text().strip() if (d / "command.txt").exists() else "(not recorded)"
        configs = sorted(str(p.relative_to(root)) for c in cfgs for p in (root / c).glob("*.yaml"))
        items.append({"title": title, "dir": d, "table": (d / "table.md").read_text(), "plots": sorted(d.glob("*.png")),
                      "command": cmd, "configs": configs, "versions": _versions(data, models, root)})
    bench = results / "bench"
    if bench.exists():
        for md in sorted(bench.glob("*.md")):
            items.append({"title": f"Benchmark: {md.stem}", "dir": bench, "table": md.read_text(),
                          "plots": sorted(bench.glob(md.stem + "*.png")), "command": _bench_command(md.stem, root),
                          "configs": [], "versions": []})
    return items


def _bench_command(stem: str, root: Path) -> str:
    for script in sorted((root / "benchmarks").glob("*.py")):
        if stem.split("_")[0] in script.stem:
            return f"python benchmarks/{script.name}"
    return "(see benchmarks/)"


def to_markdown(items: list[dict], info: dict, base: Path) -> str:
    lines = ["# tandem results report", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), ""]
    for it in items:
        lines += [f"## {it['title']}", "", f"Command: `{it['command']}`", ""]
        if it["configs"]:
            lines += ["Configs: " + ", ".join(f"`{c}`" for c in it["configs"]), ""]
        if it["versions"]:
            lines += ["Versions:", ""] + [f"- {v}" for v in it["versions"]] + [""]
        # The tables' own headings sit two levels below the section's.
        body = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", it["table"], flags=re.M)
        lines += [body.strip(), ""]
        for p in it["plots"]:
            lines += [f"![{p.stem}]({os.path.relpath(p, base)})", ""]
    return "\n".join(lines)


def _inline(s: str) -> str:
    s = html.escape(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def markdown_to_html(md: str, base: Path) -> str:
    """The small Markdown subset the report uses: headings, pipe tables, lists, images, paragraphs."""
    out, table, lst = [], [], False

    def flush_table():
        nonlocal table
        if not table:
            return
        rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in table if not re.match(r"^\|\s*-", r)]
        out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in rows[0]) + "</tr></thead><tbody>")
        for r in rows[1:]:
            out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
        out.append("</tbody></table>")
        table = []

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if lst and not line.startswith("- "):
            out.append("</ul>")
            lst = False
        m = re.match(r"^(#{1,6}) (.*)", line)
        img = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif img:
            p = (base / img.group(2)).resolve()
            data = base64.b64encode(p.read_bytes()).decode()
            out.append(f'<p><img alt="{html.escape(img.group(1))}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith("- "):
            if not lst:
                out.append("<ul>")
                lst = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush_table()
    if lst:
        out.append("</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #bbb;padding:3px 8px}"
             "th{background:#eee}td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
             "code{background:#f4f4f4;padding:1px 3px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tandem results report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def build(results: str | Path = "results", out: str | Path | None = None) -> tuple[Path, Path]:
    """Writes <out>/report.md and <out>/report.html (default out: <results>/report); returns both paths."""
    results = Path(results)
    out = Path(out) if out else results / "report"
    out.mkdir(parents=True, exist_ok=True)
    items = collect(results)
    if not items:
        raise FileNotFoundError(f"{results}: no results tables (expected <system>/table.md or bench/*.md)")
    md = to_markdown(items, machine(), out)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(markdown_to_html(md, out))
    (out / "report.json").write_text(json.dumps({"sections": [i["title"] for i in items]}, indent=1))
    return out / "report.md", out / "report.html"
