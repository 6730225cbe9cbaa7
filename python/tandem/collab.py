"""Minions: local-remote collaboration. LM clients, the OpenAI-compatible server, constrained
JSON generation and transcript viewing, over the C++ core.

    >>> from tandem import collab
    >>> remote = collab.client({"type": "openai", "base_url": "http://127.0.0.1:8765/v1", "model": "gemma3-270m"})
    >>> remote.chat([[("user", "Hello")]], max_tokens=16)[0]["content"]
    >>> collab.view("results/qasper_minions/<run>/transcripts/qasper_leval_00_q0.json")   # Markdown

`tandem serve --model gemma3-270m --port 8765` serves a tandem model; `tandem run
configs/minions/qasper_minions.yaml` runs a protocol.
"""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import yaml

from . import _C

LMClient = _C.LMClient
LocalEngine = _C.LocalEngine
OpenAIServer = _C.OpenAIServer
RemoteError = _C.RemoteError


def client(spec: dict[str, Any], device: str = "cpu", dtype: str = "float32", threads: int = 0) -> LMClient:
    """An LM client from a config mapping (``type: local | openai | replay`` and its keys)."""
    return _C.LMClient(yaml.safe_dump(spec), device, dtype, threads)


def job_output_schema() -> dict:
    """The JSON schema MinionS' local workers answer in (explanation, citation, answer)."""
    return json.loads(_C.job_output_schema())


def generate_json(engine: LocalEngine, prompts: list[str], schema: dict, max_new_tokens: int = 128,
                  temperature: float = 0.0, seed: int = 0) -> list[dict]:
    """Schema-constrained generation from raw prompts; every ``text`` parses as ``schema``."""
    return _C.generate_json(engine, prompts, schema, max_new_tokens, temperature, seed)


def view(transcript: str | Path | dict) -> str:
    """A saved transcript (path or dict) as Markdown: who said what, which chunks and jobs."""
    data = transcript if isinstance(transcript, dict) else json.loads(Path(transcript).read_text())
    return _C.transcript_markdown(json.dumps(data))


def serve(model: str, port: int = 8080, host: str = "127.0.0.1", max_batch: int = 8, batch_window_ms: float = 10.0,
          device: str = "cpu", dtype: str = "float32", threads: int = 0, ready: threading.Event | None = None,
          http_threads: int = 128, read_timeout_s: float = 10.0, header_timeout_s: float = 10.0,
          long_request_tokens: int = 1024, api_key: str = "") -> None:
    """Serves `model` OpenAI-compatibly until SIGINT / SIGTERM (the `tandem serve` command).

    Options are range-checked before the model loads (ValueError naming the flag). On SIGTERM the
    server cancels in-flight generations and returns within seconds. With `api_key`, every
    request needs ``Authorization: Bearer <api_key>``."""
    # Checked first: a bad flag should not cost a model load.
    _C.check_serve_options(host, port, max_batch, batch_window_ms, http_threads, read_timeout_s, header_timeout_s,
                           long_request_tokens)
    engine = LocalEngine(model, device, dtype, threads)
    server = OpenAIServer(engine, host, port, max_batch, batch_window_ms, http_threads, read_timeout_s,
                          header_timeout_s, long_request_tokens, api_key)
    bound = server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    auth = ", API key required" if api_key else ""
    print(f"tandem serve: {model} on http://{host}:{bound}/v1 (max batch {max_batch}{auth})", flush=True)
    if ready is not None:
        ready.set()
    while not stop.wait(0.2):
        pass
    print("tandem serve: stopping (cancelling in-flight generations)", flush=True)
    server.stop()
    print(f"tandem serve: stopped; {server.stats()}", flush=True)
