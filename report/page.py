"""The report written out: each figure as a PNG, and one HTML page holding them all (inlined as
data URIs, so the file opens anywhere with no network and no folder beside it) with a page of
sample games from the first and the latest rounds."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from league.versions import metric_agreement
from report.figures import FIGURES
from report.run_data import RunData, read_run

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
figure{margin:1.5em 0}img{max-width:100%}table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}pre{white-space:pre-wrap;margin:0}
.missing{color:#888}"""


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """The report of the run in `run_dir`, into `out` (default `RUN_DIR/report/`); returns the HTML file."""
    data = read_run(run_dir)
    out = out or run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections, missing = [], []
    for name, draw in FIGURES.items():
        fig = draw(data)
        if fig is None:
            missing.append(name)
            continue
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        png = buffer.getvalue()
        (out / f"{name}.png").write_bytes(png)
        sections.append(f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>')
    page = out / "index.html"
    page.write_text(_page(data, sections, missing))
    return page


def _page(data: RunData, figures: list[str], missing: list[str]) -> str:
    last, agreement = data.rows[-1], metric_agreement(data.versions, data.rows)
    agree = f" The skill curve's ratings against the held-out metric, {agreement[1]} versions: Spearman {agreement[0]:.2f}." if agreement else ""
    head = (f"<h1>selfplay run {html.escape(data.root.name)}</h1><p>{len(data.rows) - 1} iteration(s), policy version "
            f"{last.get('version', 0)}, held-out metric {_number(data.rows[0].get('accuracy'))} at the start, "
            f"{_number(last.get('accuracy'))} now.{agree}</p>")
    absent = f'<p class="missing">Not in this run: {", ".join(missing)}.</p>' if missing else ""
    games = "".join(_games(round_, rows) for round_, rows in data.samples.items())
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>selfplay report: {html.escape(data.root.name)}</title>'
            f"<style>{STYLE}</style></head><body>{head}{''.join(figures)}{absent}<h2>Sample games</h2>{games or '<p>none yet</p>'}</body></html>")


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _games(round_: int, rows: list[dict[str, Any]]) -> str:
    """A round's sample games side by side: the prompt, each side's answer under its name, the verdict."""

    def cell(text: Any, who: str = "") -> str:
        label = f"<b>{html.escape(who)}</b><br>" if who else ""
        return f"<td>{label}<pre>{html.escape(str(text))}</pre></td>"

    body = ""
    for g in rows:
        verdict = g["winner"] + (f": {g['reason']}" if g.get("reason") else "")
        a, b = f"{g['policy_a']} v{g['version_a']}", f"{g['policy_b']} v{g['version_b']}"
        body += f"<tr>{cell(g['prompt'])}{cell(g['response_a'], a)}{cell(g['response_b'], b)}{cell(verdict)}</tr>"
    head = "<tr><th>prompt</th><th>side a</th><th>side b</th><th>verdict</th></tr>"
    return f'<h3>Round {round_}</h3><table class="games">{head}{body}</table>'
