"""`tandem report`: every committed table and plot lands in one Markdown and one self-contained
HTML page, with its command, configs, model/data checksums and the machine."""
from __future__ import annotations

from pathlib import Path

from conftest import run_cli

import tandem.report

ROOT = Path(__file__).resolve().parents[2]


def test_report_gathers_every_committed_table_and_plot(tmp_path):
    r = run_cli("report", str(ROOT / "results"), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    tables = [p for p in (ROOT / "results").glob("*/table.md")] + list((ROOT / "results" / "bench").glob("*.md"))
    assert len(tables) >= 4
    pngs = [p for p in (ROOT / "results").glob("*/*.png")]
    for t in tables:
        lines = [l for l in t.read_text().splitlines() if l.strip()]
        rows = [l for l in lines if l.startswith("| ") and "---" not in l]
        assert (rows[0] if rows else lines[-1]).strip() in md, t
    # Every pipe table became an HTML table; every plot is embedded (no external files).
    ls = md.splitlines()
    n_md_tables = sum(1 for i, l in enumerate(ls) if l.startswith("|") and (i == 0 or not ls[i - 1].startswith("|")))
    assert page.count("<table>") == n_md_tables >= 4
    assert page.count("data:image/png;base64,") == len(pngs) and 'src="http' not in page
    for cmd in ("python experiments/spa_table.py", "python experiments/moe_table.py"):
        assert cmd in md
    assert "sha256" in md and "Machine:" in md and "torch" in md


def test_markdown_to_html_by_hand(tmp_path):
    html = tandem.report.markdown_to_html("# T\n\n| a | b |\n| --- | ---: |\n| x | 1 |\n\n- item `c`\n", tmp_path)
    assert "<h1>T</h1>" in html and "<th>a</th>" in html and "<td>1</td>" in html
    assert "<li>item <code>c</code></li>" in html


def test_report_on_an_empty_folder_is_a_clear_error(tmp_path):
    r = run_cli("report", str(tmp_path))
    assert r.returncode == 2 and "no results tables" in r.stderr
