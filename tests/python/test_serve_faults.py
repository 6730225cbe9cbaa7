"""`tandem serve` under faults and bad input: the fault-injection scenario of
benchmarks/serve_faults.py (a huge generation, a client that disconnects, 40 stalled half-headers,
8 clients trickling a header byte at a time, a prompt past the context, then SIGTERM mid-generation) while normal clients keep being served;
every CLI option range-checked before the model loads; a busy port is an error; an API key
guards every route; every request field is honoured or refused by name."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "benchmarks"))
import serve_faults as sf  # noqa: E402

MODEL = REPO / "models" / "smollm2-135m.gguf"
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="run scripts/setup.sh (installs models)")


def test_normal_clients_are_served_through_the_faults_and_sigterm_stops_it(tmp_path):
    r = sf.scenario(normal_requests=12, slow_connections=40, huge_tokens=6000, log=tmp_path / "serve.log")
    print(json.dumps(r, indent=1))
    assert r["disconnect_cancelled"] and r["disconnect_cancelled_after_s"] < 3, r
    assert r["over_long_prompt_status"] == 400 and "maximum context length is 8192" in r["over_long_prompt_message"]
    assert r["normal_ok"] == 12, r
    # The huge request runs in its own lane: short ones are slower (two lanes share two cores),
    # not stuck behind it for minutes.
    assert r["latency_p95_s"] < 10, r
    assert r["huge_still_running_at_sigterm"], "the huge request must still be running when SIGTERM comes"
    # Tricklers (a header byte every 0.5 s) pass every per-read timeout; the head deadline (3 s) drops them.
    assert r["trickle_all_dropped_after_s"] is not None and r["trickle_all_dropped_after_s"] < 8, r
    assert r["header_timeouts"] >= r["trickle_connections"], r
    assert r["sigterm_exit_s"] < 5 and r["sigterm_exit_code"] == 0, r
    assert r["huge_request_status"] == 503, r


@pytest.mark.parametrize("args,message", [
    (["--port", "99999"], "--port must be between 1 and 65535"),
    (["--max-batch", "0"], "--max-batch must be between 1 and 256"),
    (["--batch-window-ms", "-1"], "--batch-window-ms must be between 0 and 10000"),
    (["--http-threads", "0"], "--http-threads must be between 1 and 4096"),
    (["--read-timeout", "0"], "--read-timeout must be between 0.1 and 3600"),
    (["--header-timeout", "1e9"], "--header-timeout must be between 0.1 and 3600"),
    (["--api-key-env", "TANDEM_TEST_UNSET_KEY"], "TANDEM_TEST_UNSET_KEY: that environment variable is not set"),
])
def test_cli_options_are_range_checked_before_the_model_loads(args, message):
    p = run_cli("serve", "--model", "no-such-model", *args, timeout=60)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_port_in_use_api_key_and_request_fields(tmp_path):
    port = sf.free_port()
    env_key = {"TANDEM_TEST_KEY": "s3cret"}
    os.environ.update(env_key)
    proc = sf.start_server(str(MODEL), port, tmp_path / "a.log", ["--api-key-env", "TANDEM_TEST_KEY"])
    try:
        # A second server on the busy port: an error naming it, not a silent share of its traffic.
        second = run_cli("serve", "--model", str(MODEL), "--port", str(port), timeout=120)
        assert second.returncode == 2 and f"cannot listen on 127.0.0.1:{port}: the port is in use" in second.stderr, second.stderr

        from urllib.error import HTTPError
        from urllib.request import Request, urlopen

        def call(body: dict, key: str | None = "s3cret", endpoint: str = "chat/completions") -> tuple[int, dict]:
            h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
            try:
                with urlopen(Request(f"http://127.0.0.1:{port}/v1/{endpoint}", data=json.dumps(body).encode(), headers=h),
                             timeout=120) as r:
                    return r.status, json.loads(r.read())
            except HTTPError as e:
                return e.code, json.loads(e.read())

        hi = {"messages": [{"role": "user", "content": "Name a fruit."}], "max_tokens": 6}
        assert call(hi, key=None)[0] == 401
        assert call(hi, key="wrong")[1]["error"]["code"] == "invalid_api_key"
        code, greedy = call(hi)
        assert code == 200
        # temperature 1e-300 is greedy (its limit), not a NaN softmax and a 500.
        code, tiny = call({**hi, "temperature": 1e-300})
        assert code == 200 and tiny["choices"][0]["message"] == greedy["choices"][0]["message"]
        # n is honoured: choice i is the request with seed + i, and usage counts every choice.
        code, two = call({**hi, "n": 2, "temperature": 0.8, "seed": 1})
        assert code == 200 and [c["index"] for c in two["choices"]] == [0, 1]
        singles = [call({**hi, "temperature": 0.8, "seed": s})[1] for s in (1, 2)]
        assert [c["message"] for c in two["choices"]] == [o["choices"][0]["message"] for o in singles]
        assert two["usage"]["completion_tokens"] == sum(o["usage"]["completion_tokens"] for o in singles)
        for body, status, text in [
            ({**hi, "temperature": 3}, 400, "'temperature' must be between 0 and 2"),
            ({**hi, "n": 100}, 400, "'n' must be between 1 and 8"),
            ({**hi, "model": "gpt-4"}, 404, "The model 'gpt-4' does not exist"),
            ({**hi, "tools": []}, 400, "unsupported parameter 'tools'"),
            ({**hi, "stop": ["\n"]}, 400, "stop sequences are not supported"),
            ({**hi, "logprobs": True}, 400, "log-probabilities are not returned"),
            ({**hi, "max_tokens": 10 ** 6}, 400, "maximum context length is 8192 tokens"),
            ({**hi, "max_tokens": 0}, 400, "'max_tokens' must be between 1 and"),
            ({"messages": []}, 400, "'messages' must be a non-empty list"),
            ({**hi, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object", "properties": {},
                                                                                          "pattern": "x"}}}},
             400, "keyword \"pattern\" is not supported"),
        ]:
            code, out = call(body)
            assert code == status and text in out["error"]["message"], (body, code, out)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
