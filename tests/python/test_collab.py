"""Minions: constrained JSON decoding, the OpenAI-compatible server against the official
`openai` client, tandem's client against llama-cpp-python's server, faults from a stub server,
record/replay, the protocols end to end, and the long-document readers."""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tandem
from tandem import _C, collab

ROOT = Path(__file__).resolve().parents[2]
SMOL = ROOT / "models" / "smollm2-135m.gguf"
pytestmark = pytest.mark.skipif(not SMOL.exists(), reason="run scripts/setup.sh (installs models)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 180, log: Path | None = None) -> None:
    import urllib.request

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:] if log else ''}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def engine():
    return collab.LocalEngine("smollm2-135m")


# ---- constrained decoding ----

def qasper_chunks(n: int) -> list[str]:
    docs = _C.load_long_doc_qa("type: qasper\nquestions_per_paper: 1\nlimit: 4\n")
    chunks = [c for d in docs for c in _C.chunk_text(d["document"], 1200)]
    return chunks[:n]


def test_job_outputs_always_parse_even_when_sampled(engine):
    schema = collab.job_output_schema()
    chunks = qasper_chunks(16)
    jobs = ["What dataset is used?", "Which model performs best?", "What is the main result?"]
    prompts = [f"<|im_start|>user\nText:\n{c}\n\nTask: {jobs[i % 3]}\nReply in JSON.<|im_end|>\n<|im_start|>assistant\n"
               for i, c in enumerate(chunks)]
    outs = []
    for s in range(0, len(prompts), 8):  # greedy, then sampled at a high temperature
        outs += collab.generate_json(engine, prompts[s:s + 8], schema, max_new_tokens=60, temperature=0.0)
        outs += collab.generate_json(engine, prompts[s:s + 8], schema, max_new_tokens=60, temperature=1.2, seed=s)
    assert len(outs) == 32
    for o in outs:
        v = json.loads(o["text"])
        assert list(v) == ["explanation", "citation", "answer"]
        assert all(isinstance(x, str) for x in v.values())
        assert len(v["answer"]) <= 60 + 20  # maxLength closes the string after the token that crosses it
    # The budget of 60 tokens is too small for three full strings: closed early, still JSON.
    assert any(o["finish_reason"] == "length" for o in outs)


def test_nested_schema_enum_integer_boolean_array(engine):
    schema = {"type": "object", "properties": {
        "colours": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3},
        "count": {"type": "integer"}, "sure": {"type": "boolean"},
        "jobs": {"type": "array", "items": {"type": "object", "properties": {"task": {"type": "string", "maxLength": 30},
                                                                             "chunk": {"type": "integer"}}}, "maxItems": 2}}}
    outs = collab.generate_json(engine, ["Name some colours as JSON: ", "{\"colours\": ", "Reply: "], schema, 80, 0.9, 3)
    for o in outs:
        v = json.loads(o["text"])
        assert 1 <= len(v["colours"]) <= 3 and set(v["colours"]) <= {"red", "green", "blue"}
        assert isinstance(v["count"], int) and isinstance(v["sure"], bool)
        assert len(v["jobs"]) <= 2 and all(set(j) == {"task", "chunk"} for j in v["jobs"])


def test_unsupported_schema_is_a_clear_error(engine):
    with pytest.raises(Exception, match="unsupported schema type \"number\""):
        collab.generate_json(engine, ["x"], {"type": "object", "properties": {"p": {"type": "number"}}})


# ---- tandem serve <-> the official openai client ----

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # Server output goes to a file: a pipe nobody reads would fill and block the server.
    proc = subprocess.Popen([sys.executable, "-m", "tandem", "serve", "--model", "smollm2-135m", "--port", str(port),
                             "--max-batch", "8", "--batch-window-ms", "50"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log=log)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_openai_client_talks_to_tandem_serve(served, engine):
    import openai

    c = openai.OpenAI(base_url=f"http://127.0.0.1:{served}/v1", api_key="unused")
    assert [m.id for m in c.models.list().data] == ["smollm2-135m"]
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    r = c.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=12, temperature=0)
    want = collab.client({"type": "local", "model": "smollm2-135m"}).chat(
        [[("user", msgs[0]["content"])]], max_tokens=12)[0]
    assert r.choices[0].message.content == want["content"]  # the server is the engine, byte for byte
    assert r.usage.prompt_tokens == want["prompt_tokens"] and r.usage.completion_tokens == want["completion_tokens"]
    cmp = c.completions.create(model="smollm2-135m", prompt="The sky is", max_tokens=5, temperature=0)
    assert cmp.usage.completion_tokens == 5 and cmp.choices[0].text
    js = c.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=40, temperature=0,
                                   response_format={"type": "json_schema", "json_schema": {
                                       "name": "a", "schema": collab.job_output_schema()}})
    assert set(json.loads(js.choices[0].message.content)) == {"explanation", "citation", "answer"}
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=0)


def test_concurrent_requests_are_batched(served):
    import urllib.request

    def ask(i, out):
        body = json.dumps({"messages": [{"role": "user", "content": f"Count to {i}."}], "max_tokens": 8}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{served}/v1/chat/completions", body,
                                     {"Content-Type": "application/json"})
        out[i] = json.loads(urllib.request.urlopen(req, timeout=120).read())

    out: dict = {}
    ts = [threading.Thread(target=ask, args=(i, out)) for i in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(out) == 8 and all(o["choices"][0]["message"]["content"] for o in out.values())
    stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{served}/v1/stats").read())
    assert stats["max_batch_seen"] >= 4, stats


# ---- tandem's client <-> llama-cpp-python's OpenAI-compatible server ----

def test_tandem_client_talks_to_llama_cpp_server(tmp_path):
    import llama_cpp.server.app  # noqa: F401  (installed by scripts/setup.sh; a missing one fails here)
    import openai

    port = free_port()
    log = tmp_path / "llama_server.log"
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(SMOL), "--port", str(port),
                             "--n_ctx", "1024", "--model_alias", "smol"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log=log)
        cli = collab.client({"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "smol",
                             "timeout_s": 120, "send_schema": False})
        msgs = [("user", "Name a fruit. One word.")]
        ours = cli.chat([msgs], max_tokens=8, temperature=0.0)[0]
        ref = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x").chat.completions.create(
            model="smol", messages=[{"role": "user", "content": msgs[0][1]}], max_tokens=8, temperature=0.0, seed=0)
        assert ours["content"] == ref.choices[0].message.content and ours["content"]
        assert ours["prompt_tokens"] == ref.usage.prompt_tokens and ours["completion_tokens"] == ref.usage.completion_tokens
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---- faults ----

class Stub(http.server.BaseHTTPRequestHandler):
    """Replies by a script: each request pops the next behaviour; 'ok' answers normally."""
    script: list = []
    hang_s = 3.0
    seen: list = []
    outage_over = False  # True: "ALWAYS500" questions are answered too

    def log_message(self, *a):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.seen.append(body)
        user = body["messages"][-1]["content"]
        what = Stub.script.pop(0) if Stub.script else "ok"
        if "ALWAYS500" in user and not Stub.outage_over:
            what = "500"
        if what.startswith("429-retry-after-"):
            self.send_response(429)
            self.send_header("Retry-After", what.rsplit("-", 1)[1])
            self.end_headers()
            self.wfile.write(b"{\"error\": \"slow down\"}")
            return
        if what in ("500", "429"):
            self.send_response(int(what))
            self.end_headers()
            self.wfile.write(b"{\"error\": \"scripted\"}")
            return
        ok = json.dumps({"choices": [{"message": {"role": "assistant", "content": "reply to " + user[-20:]},
                                      "finish_reason": "stop"}], "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        if what == "malformed":
            ok = "{\"choices\": [this is not json"
        if what == "truncated":
            data = ok.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if what == "hang":
            time.sleep(Stub.hang_s)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(ok.encode())


@pytest.fixture()
def stub():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Stub.script, Stub.seen, Stub.outage_over = [], [], False
    yield srv.server_address[1]
    srv.shutdown()


def stub_client(port: int, retries: int, **kw):
    return collab.client({"type": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m",
                          "max_retries": retries, "backoff_s": 0.01, "timeout_s": 1.0, **kw})


def test_retries_through_every_fault_kind(stub):
    Stub.script = ["500", "429", "malformed", "truncated", "hang"]
    r = stub_client(stub, retries=5).chat([[("user", "hello")]], max_tokens=4)[0]
    assert r["content"] == "reply to hello" and r["attempts"] == 6
    assert (r["prompt_tokens"], r["completion_tokens"]) == (7, 3)


@pytest.mark.parametrize("fault,text", [("500", "HTTP 500"), ("429", "HTTP 429"), ("malformed", "malformed reply"),
                                        ("truncated", "no complete reply"), ("hang", "no complete reply")])
def test_budget_exhausted_is_a_clear_error(stub, fault, text):
    Stub.script = [fault] * 3
    with pytest.raises(collab.RemoteError, match=f"gave up after 3 attempts; last: {text}"):
        stub_client(stub, retries=2).chat([[("user", "hi")]], max_tokens=4)


def write_docs(path: Path, n: int = 3) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            q = "ALWAYS500 what colour?" if i == 1 else f"question {i}: what colour?"
            f.write(json.dumps({"id": f"d{i}", "document": f"The sky in report {i} is blue.\n" * 40, "question": q,
                                "answers": ["blue"]}) + "\n")
    return path


def test_failed_examples_fail_the_run_and_are_retried_on_the_next(stub, tmp_path):
    data = write_docs(tmp_path / "docs.jsonl")
    cfg = {"experiment": {"type": "collab_qa", "name": "faulty"}, "device": "cpu",
           "data": {"type": "jsonl", "path": str(data)}, "protocol": {"type": "remote_only"},
           "remote": {"type": "openai", "base_url": f"http://127.0.0.1:{stub}/v1", "model": "m", "max_retries": 2,
                      "backoff_s": 0.01, "timeout_s": 2.0}, "run": {"results_dir": str(tmp_path / "res"), "id": "r"}}
    # A remote outage for one example: the others finish, the run does not (no metrics.json).
    with pytest.raises(RuntimeError, match=r"1 of 3 examples failed \(d1; first error: .*gave up after 3 attempts; last: HTTP 500"):
        tandem.run(cfg, plot=False)
    run_dir = tmp_path / "res" / "faulty" / "r"
    rows = [json.loads(l) for l in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["d0", "d1", "d2"]
    assert [r["failed"] for r in rows] == [False, True, False]
    t = json.loads((run_dir / "transcripts" / "d1.json").read_text())
    assert "gave up after 3 attempts; last: HTTP 500" in t["error"]
    assert "Error:" in (run_dir / "transcripts" / "d1.md").read_text()
    assert not (run_dir / "metrics.json").exists()
    # The outage ends: the rerun asks the remote about d1 only, and finishes.
    Stub.outage_over, Stub.seen = True, []
    res = tandem.run(cfg, plot=False)
    assert ["ALWAYS500" in b["messages"][-1]["content"] for b in Stub.seen] == [True]
    assert res.metrics["failed"] == 0 and res.metrics["examples"] == 3
    assert res.metrics["remote_prompt_tokens"] == 21  # three answered, 7 each
    assert "retrying 1 examples that failed last time" in (run_dir / "log.txt").read_text()


def test_retry_after_is_honoured_and_a_timeout_says_so(stub):
    Stub.script = ["429-retry-after-1"]
    t0 = time.time()
    r = stub_client(stub, retries=2).chat([[("user", "hello")]], max_tokens=4)[0]
    assert r["attempts"] == 2 and time.time() - t0 >= 1.0  # waited what the server asked, not the 0.01 s backoff
    Stub.script = ["429-retry-after-600"]
    with pytest.raises(collab.RemoteError, match="Retry-After 600 s, more than max_retry_after_s"):
        stub_client(stub, retries=2, max_retry_after_s=5).chat([[("user", "hello")]], max_tokens=4)
    Stub.script = ["hang"] * 2
    with pytest.raises(collab.RemoteError, match=r"no complete reply within the timeout of 1 s \(timeout_s\)"):
        stub_client(stub, retries=1).chat([[("user", "hi")]], max_tokens=4)


def test_record_then_replay_offline_bit_exact(stub, tmp_path):
    log = tmp_path / "exchanges.jsonl"
    inner = {"type": "openai", "base_url": f"http://127.0.0.1:{stub}/v1", "model": "m", "backoff_s": 0.01}
    rec = collab.client({"type": "replay", "mode": "record", "path": str(log), "inner": inner})
    convs = [[("user", "alpha")], [("user", "beta")]]
    first = rec.chat(convs, max_tokens=4)
    assert len(log.read_text().splitlines()) == 2
    n_before = len(Stub.seen)
    rep = collab.client({"type": "replay", "mode": "replay", "path": str(log),
                         "inner": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}})
    assert rep.chat(convs, max_tokens=4) == first
    assert len(Stub.seen) == n_before  # nothing went to the network
    with pytest.raises(collab.RemoteError, match="no recorded reply"):
        rep.chat([[("user", "gamma")]], max_tokens=4)


# ---- protocols end to end (both sides SmolLM2 in process) ----

def test_protocols_end_to_end_and_minions_saves_remote_tokens(tmp_path):
    doc = ("The experiments use the Twitter fake-news corpus collected in 2019. "
           "Results are reported as macro F1. ") * 60
    data = tmp_path / "doc.jsonl"
    data.write_text(json.dumps({"id": "p0", "document": doc, "question": "Which corpus do the experiments use?",
                                "answers": ["the Twitter fake-news corpus"]}) + "\n")
    side = {"type": "local", "model": "smollm2-135m", "max_batch": 8}
    metrics = {}
    for proto in ({"type": "remote_only"}, {"type": "local_only"}, {"type": "minion", "rounds": 1, "local_tokens": 24},
                  {"type": "minions", "chunk_chars": 1500, "jobs_per_round": 1, "rounds": 1, "job_tokens": 40}):
        cfg = {"experiment": {"type": "collab_qa", "name": proto["type"]}, "device": "cpu",
               "data": {"type": "jsonl", "path": str(data)}, "protocol": {**proto, "answer_tokens": 12},
               "local": side, "remote": side, "run": {"results_dir": str(tmp_path / "res")}}
        res = tandem.run(cfg, plot=False)
        metrics[proto["type"]] = res.metrics
        t = json.loads((res.run_dir / "transcripts" / "p0.json").read_text())
        assert t["error"] is None and t["events"]
    m = metrics
    assert m["local_only"]["remote_prompt_tokens"] == 0 and m["remote_only"]["local_prompt_tokens"] == 0
    n_chunks = len(_C.chunk_text(doc, 1500))
    tr = json.loads(next((tmp_path / "res" / "minions").glob("*/transcripts/p0.json")).read_text())
    outs = [e for e in tr["events"] if e["who"] == "local"]
    assert len(outs) == n_chunks and sorted(e["chunk"] for e in outs) == list(range(n_chunks))
    # The remote never reads the document in MinionS: far fewer remote prompt tokens.
    assert m["minions"]["remote_prompt_tokens"] * 3 < m["remote_only"]["remote_prompt_tokens"]
    assert m["minion"]["remote_prompt_tokens"] * 3 < m["remote_only"]["remote_prompt_tokens"]


# ---- readers and metric ----

def test_readers_and_answer_f1():
    q = _C.load_long_doc_qa("type: qasper\n")
    assert len(q) == 152 and all(x["answers"] for x in q)
    fb = _C.load_long_doc_qa("type: financebench\npages: evidence_window\nwindow: 1\n")
    assert len(fb) == 94
    x = fb[0]
    lo, hi = json.loads(x["meta"])["pages"]
    assert x["document"].count("[page ") == hi - lo + 1 <= 3 + 2
    assert _C.answer_f1(["The quick brown fox"], "quick fox") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert _C.answer_f1(["a", "blue sky"], "the blue sky") == 1.0
    chunks = _C.chunk_text("line one\n" * 100, 95)
    assert "".join(chunks) == "line one\n" * 100 and all(len(c) <= 95 for c in chunks)
