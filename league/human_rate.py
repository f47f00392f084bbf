"""`selfplay human-rate RUN_DIR`: the blind pairs `human-export` wrote, rated in a browser.

One prompt and its two answers at a time; keys 1 and 2 pick an answer, t a tie. Each verdict is
appended to a JSONL file the moment it is given (and flushed to disk), so a rater who closes the
page loses nothing and the next session starts at the first sample not yet rated; the file is
what `human-import` reads. The server (the standard library's) binds to 127.0.0.1; bound to
anything else it asks for a token in every request, printed at start.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock
from typing import Any
from urllib.parse import parse_qs, urlparse

from league.human_eval import VERDICTS, HumanEvalError, read_verdicts

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RatingSession:
    """The samples, the verdicts given so far (read back from the file), and the next one to rate."""

    def __init__(self, samples: Path, verdicts: Path) -> None:
        if not samples.is_file():
            raise HumanEvalError(f"no samples at {str(samples)!r}: write them first with selfplay human-export RUN_DIR")
        self.samples = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
        self.path, self.lock = verdicts, Lock()
        self.given = read_verdicts(verdicts) if verdicts.is_file() else {}

    def state(self) -> dict[str, Any]:
        """The next sample not yet rated (None when every one is), and the progress."""
        upcoming = next((s for s in self.samples if s["sample_id"] not in self.given), None)
        return {"sample": upcoming, "rated": len(self.given), "total": len(self.samples)}

    def rate(self, sample_id: str, verdict: str) -> dict[str, Any]:
        """Keep one verdict (a later one for the same sample replaces it on import) and say what is next."""
        if verdict not in VERDICTS:
            raise HumanEvalError(f"verdict {verdict!r}: use 1, 2 or tie")
        if not any(s["sample_id"] == sample_id for s in self.samples):
            raise HumanEvalError(f"no sample {sample_id!r} in this export")
        with self.lock:
            with open(self.path, "a") as f:
                f.write(json.dumps({"sample_id": sample_id, "verdict": verdict}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.given[sample_id] = verdict
        return self.state()


def server(session: RatingSession, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> ThreadingHTTPServer:
    """The rating page's server (not yet serving: call `serve_forever`). Off the loopback a token
    is required: `token`, or a new one (`server.token`)."""
    needed = None if host in LOOPBACK else (token or secrets.token_urlsafe(16))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if not self._allowed(url.query):
                return
            if url.path == "/":
                self._send(200, PAGE.replace("__TOKEN__", json.dumps(needed or "")), "text/html; charset=utf-8")
            elif url.path == "/next":
                self._json(200, session.state())
            else:
                self._json(404, {"error": f"no page {url.path}"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            if not self._allowed(url.query):
                return
            if url.path != "/verdict":
                self._json(404, {"error": f"no page {url.path}"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self._json(200, session.rate(str(body.get("sample_id")), str(body.get("verdict"))))
            except (HumanEvalError, ValueError) as err:
                self._json(400, {"error": str(err)})

        def _allowed(self, query: str) -> bool:
            given = parse_qs(query).get("token", [""])[0] or self.headers.get("X-Token", "")
            if needed is None or hmac.compare_digest(given, needed):
                return True
            self._json(403, {"error": "this server asks for its token: open the address it printed, with ?token=..."})
            return False

        def _json(self, code: int, data: dict) -> None:
            self._send(code, json.dumps(data), "application/json")

        def _send(self, code: int, text: str, kind: str) -> None:
            payload = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet: the terminal shows the address and the progress, not every request."""

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.token = needed  # type: ignore[attr-defined]
    return httpd


# `<link rel="icon" href="data:,">`: no icon, so the browser asks for no /favicon.ico (a 404 in its console)
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>selfplay: rate answers</title><link rel="icon" href="data:,">
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}.answers{display:flex;gap:1em}
.answers div{flex:1;border:1px solid #ccc;padding:.6em}pre{white-space:pre-wrap}#progress{color:#666}</style></head><body>
<p id="progress"></p><h3>Prompt</h3><pre id="prompt"></pre>
<div class="answers"><div><h3>1</h3><pre id="r1"></pre></div><div><h3>2</h3><pre id="r2"></pre></div></div>
<p>Press <b>1</b> or <b>2</b> for the better answer, <b>t</b> for a tie. Each verdict is saved as you give it.</p>
<script>
const token = __TOKEN__; const q = token ? "?token=" + encodeURIComponent(token) : "";
let current = null;
function show(s) {
  document.getElementById("progress").textContent = s.rated + " of " + s.total + " rated";
  current = s.sample;
  if (!current) { document.getElementById("prompt").textContent = "Every sample is rated: fold them in with selfplay human-import.";
                  document.getElementById("r1").textContent = ""; document.getElementById("r2").textContent = ""; return; }
  document.getElementById("prompt").textContent = current.prompt;
  document.getElementById("r1").textContent = current.response_1;
  document.getElementById("r2").textContent = current.response_2;
}
async function load() { show(await (await fetch("/next" + q)).json()); }
document.addEventListener("keydown", async (e) => {
  const verdict = {"1": "1", "2": "2", "t": "tie"}[e.key];
  if (!verdict || !current) return;
  const r = await fetch("/verdict" + q, {method: "POST", body: JSON.stringify({sample_id: current.sample_id, verdict})});
  show(await r.json());
});
load();
</script></body></html>"""
