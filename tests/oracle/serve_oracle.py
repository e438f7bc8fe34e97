"""`ropescale serve` driven by real clients: the official `openai` Python client
and Prometheus' own text parser, over loopback, with bounded requests and time.

- completions, streaming and echo+logprobs through the openai client; the
  prompt's logprobs equal `ropescale eval ppl`'s per-token NLL (1e-4);
- a request's `rope_scaling` gives the logits `ropescale logits` gives with it;
  the `auto` policy runs short prompts at factor 1.0 and long ones at the factor
  their length needs;
- a dynamic-YaRN stream crossing the trained length gives, token for token, the
  logits of a fresh full prefill at each length (1e-4);
- malformed requests get OpenAI error objects (400/401/404/413) and the server
  keeps serving; 8 concurrent clients mixing short and 8x-long prompts and rope
  settings get exactly what each request gets alone, with no 5xx;
- /metrics parses with prometheus_client; a client killed mid-stream frees its
  session; a full queue answers 429 with Retry-After and recovers; SIGTERM
  mid-stream finishes the stream and exits 0.

Usage: serve_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all pass, 1 = a failure, 77 = skipped.
"""
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from oracle_support import Checks, log_softmax, ropescale_ids, ropescale_logits, shared_root

try:
    import numpy as np
    import openai
    from prometheus_client.parser import text_string_to_metric_families
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the serve oracle needs openai, prometheus_client and numpy ({e})", flush=True)
    sys.exit(77)

KEY = "test-key-123"
TOL = 1e-4
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "models", "ropescale-kjv-256.gguf")
TRAINED = 256


class Server:
    """`ropescale serve` on a free loopback port; always stopped."""

    def __init__(self, binary, *flags):
        self.proc = subprocess.Popen([binary, "serve", "--model", MODEL, "--port", "0", "--threads", "2", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "ropescale: serving … on http://127.0.0.1:PORT — …"
        if "http://127.0.0.1:" not in line:
            self.stop()
            raise RuntimeError(f"the server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        conn.request(method, path, data, {"Authorization": f"Bearer {KEY}", **(headers or {})})
        r = conn.getresponse()
        payload = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), payload

    def complete(self, body):
        status, headers, payload = self.request("POST", "/v1/completions", body)
        return status, headers, json.loads(payload)

    def metrics(self):
        _, _, text = self.request("GET", "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        return families

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def sample_metric(families, family, **labels):
    f = families.get(family)
    for s in (f.samples if f else []):
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith(("_created",)):
            return s.value
    return None


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    if not os.path.exists(MODEL):
        print(f"SKIPPED LOUDLY: {MODEL} is absent", flush=True)
        return 77
    kjv_path = os.path.join(shared_root(model_dir), "data", "kjv_genesis.txt")
    if not os.path.exists(kjv_path):
        print(f"SKIPPED LOUDLY: {kjv_path} is absent", flush=True)
        return 77
    with open(kjv_path, encoding="utf-8") as f:
        kjv = f.read()
    c = Checks()
    tmp = tempfile.mkdtemp()
    server = Server(binary, "--api-key", KEY, "--parallel", "4", "--queue", "64", "--max-body", "1")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0, timeout=120)
        name = client.models.list().data[0].id
        c.check(name == "ropescale-kjv-256", "GET /v1/models through the openai client", name)

        # Completions, streaming: the same text.
        r = client.completions.create(model=name, prompt="And God said", max_tokens=40, temperature=0)
        streamed = "".join(ch.choices[0].text for ch in client.completions.create(
            model=name, prompt="And God said", max_tokens=40, temperature=0, stream=True))
        c.check(len(r.choices[0].text) == 40 and r.usage.completion_tokens == 40 and r.choices[0].finish_reason == "length",
                "completion: 40 tokens, usage and finish_reason", repr(r.choices[0].text[:30]))
        c.check(streamed == r.choices[0].text, "streaming gives the same text as one response")
        rope = (r.model_extra or {}).get("rope", {})
        c.check(rope.get("label") == "none", "a short prompt under the auto policy runs at factor 1.0", json.dumps(rope))

        # Echo + logprobs = eval ppl's per-token NLL.
        text = kjv[1000:1200]
        path = os.path.join(tmp, "prompt.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        ids = ropescale_ids(binary, MODEL, text, tmp)
        ids_file = os.path.join(tmp, "prompt.ids")
        with open(ids_file, "w") as f:
            f.write(" ".join(map(str, ids)))
        e = client.completions.create(model=name, prompt=text, max_tokens=0, echo=True, logprobs=1, temperature=0)
        lp = e.choices[0].logprobs
        ppl = json.loads(subprocess.run([binary, "eval", "ppl", "--model", MODEL, "--ids", ids_file, "--ctx", str(len(ids)),
                                         "--tokens", str(len(ids)), "--methods", "none", "--bucket", "1", "--json", "-",
                                         "--quiet"], check=True, capture_output=True, text=True).stdout)["results"][0]
        theirs = {b["start"]: b["nll"] for b in ppl["buckets"] if b["tokens"]}
        worst = max(abs(-lp.token_logprobs[i] - theirs[i]) for i in range(1, len(ids)))
        c.check(lp.token_logprobs[0] is None and len(lp.tokens) == len(ids) and worst <= TOL and e.choices[0].text == text,
                f"echo+logprobs over {len(ids)} prompt tokens = eval ppl's per-token NLL", f"max |diff| {worst:.1e}")

        # A request's rope_scaling = `ropescale logits` with it (600 token ids, past the trained 256).
        long_ids = ropescale_ids(binary, MODEL, kjv[5000:5599], tmp)[:600]
        setting = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": TRAINED}
        status, headers, body = server.complete({"prompt": long_ids, "max_tokens": 0, "echo": True, "logprobs": 0,
                                                 "rope_scaling": setting})
        ours = log_softmax(ropescale_logits(binary, MODEL, long_ids, len(long_ids), setting))
        served = body["choices"][0]["logprobs"]["token_logprobs"]
        worst = max(abs(served[i] - ours[i - 1][long_ids[i]]) for i in range(1, len(long_ids)))
        c.check(status == 200 and worst <= TOL and headers.get("X-Ropescale-Rope") == "yarn:4.0",
                "rope_scaling yarn x4 on 600 ids = `ropescale logits --rope-scaling` at every position", f"max |diff| {worst:.1e}")

        # auto: the factor the length needs (700 + 100 tokens → ceil(800/256) = 4).
        status, headers, body = server.complete({"prompt": long_ids[:700] + long_ids[:100], "max_tokens": 100, "temperature": 0})
        c.check(status == 200 and body["rope"]["label"] == "yarn:4.0" and body["rope"]["source"] == "server policy auto",
                "auto: 700-token prompt + 100 new tokens run at yarn factor 4", json.dumps(body.get("rope")))

        # Dynamic YaRN across the trained length: every token's logprob = a fresh full prefill at that length.
        prompt = ropescale_ids(binary, MODEL, kjv[9000:9400], tmp)[:TRAINED - 10]
        status, _, body = server.complete({"prompt": prompt, "max_tokens": 24, "temperature": 0, "logprobs": 0,
                                           "rope_policy": "dynamic"})
        gen = body["choices"][0]["logprobs"]
        dyn = body["rope"]["rope_scaling"]
        text_bytes = body["choices"][0]["text"].encode("utf-8")
        ok = status == 200 and body["rope"]["kv_cache"].startswith("recomputed") and len(text_bytes) == 24
        worst = 0.0
        for k in range(24 if ok else 0):
            seq = prompt + [3 + b for b in text_bytes[:k]]  # the byte-level model: token = 3 + byte
            fresh = log_softmax(ropescale_logits(binary, MODEL, seq, 1, dyn))[0][3 + text_bytes[k]]
            worst = max(worst, abs(fresh - gen["token_logprobs"][k]))
        c.check(ok and worst <= TOL, f"dynamic YaRN stream {len(prompt)} → {len(prompt) + 24} tokens = fresh full prefills "
                "at each length", f"max |diff| {worst:.1e}")

        # Bad requests: OpenAI error objects, and the server keeps serving.
        bad = [(b'{"prompt":', 400, None), (b'[1,2]', 400, None), (b'{"prompt":""}', 400, "prompt"),
               (b'{"prompt":"x","max_tokens":-5}', 400, "max_tokens"), (b'{"prompt":"x","max_tokens":99999999}', 400, "max_tokens"),
               (b'{"prompt":[1,2,100000]}', 400, "prompt"), (b'{"prompt":"x","temperature":"hot"}', 400, "temperature"),
               (b'{"prompt":"x","rope_scaling":{"rope_type":"yarn","factor":0}}', 400, "rope_scaling"),
               (b'{"prompt":"x","rope_scaling":{"rope_type":"yarn","factor":1e308}}', 400, "rope_scaling"),
               (b'{"prompt":"x","rope_scaling":{"rope_type":"nope"}}', 400, "rope_scaling"),
               (b'{"prompt":"x","rope_scaling":"longrope:/etc/passwd"}', 400, "rope_scaling"),
               (b'{"prompt":"x","rope_policy":"sometimes"}', 400, "rope_policy"),
               (b'{"prompt":' + b'[' * 5000 + b']' * 5000 + b'}', 400, None),
               (b'{"prompt":"' + b'a' * (2 << 20) + b'"}', 413, None)]
        all_ok = True
        for payload, want, param in bad:
            status, _, raw = server.request("POST", "/v1/completions", payload)
            err = json.loads(raw).get("error", {})
            good = status == want and err.get("message") and err.get("param") == param
            all_ok &= bool(good)
            if not good:
                print(f"     {payload[:50]!r}: {status} {raw[:200]!r}", flush=True)
        status, _, raw = server.request("POST", "/v1/completions", b'{"prompt":"x"}', {"Authorization": "Bearer wrong"})
        all_ok &= status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, _ = server.request("GET", "/v1/nothing-here")
        all_ok &= status == 404
        try:
            openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="wrong", max_retries=0).completions.create(
                model=name, prompt="x", max_tokens=1)
            all_ok = False
        except openai.AuthenticationError:
            pass
        after = client.completions.create(model=name, prompt="And God said", max_tokens=40, temperature=0)
        c.check(all_ok and after.choices[0].text == r.choices[0].text,
                f"{len(bad) + 3} malformed / unauthorised / unknown requests get OpenAI errors; the server keeps serving")

        # 8 concurrent clients × 3 requests, short and 8x-long prompts, several rope settings: each = alone.
        long_prompt = ropescale_ids(binary, MODEL, kjv[20000:22100], tmp)[:8 * TRAINED - 32]
        kinds = [{"prompt": "In the beginning", "max_tokens": 24},
                 {"prompt": long_prompt, "max_tokens": 24},
                 {"prompt": "And the LORD", "max_tokens": 16, "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
                 {"prompt": long_prompt[:900], "max_tokens": 16, "rope_policy": "dynamic"},
                 {"prompt": "Let there be light", "max_tokens": 20, "rope_policy": "none", "stop": ["\n"]},
                 {"prompt": long_prompt[:1500], "max_tokens": 16, "rope_scaling": {"rope_type": "yarn", "factor": 8.0}}]
        for k in kinds:
            k["temperature"] = 0
        alone = [server.complete(k)[2]["choices"][0]["text"] for k in kinds]
        jobs = [kinds[(i + j) % len(kinds)] for i in range(8) for j in range(3)]
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(server.complete, jobs))
        seconds = time.time() - t0
        same = all(s == 200 and b["choices"][0]["text"] == alone[kinds.index(j)] for (s, _, b), j in zip(results, jobs))
        tokens = sum(b["usage"]["completion_tokens"] + b["usage"]["prompt_tokens"] for s, _, b in results if s == 200)
        c.check(same, f"8 clients × 3 requests (short, {len(long_prompt)}-token, 5 rope settings) concurrently = each alone",
                f"{seconds:.1f} s, {tokens / seconds:.0f} tokens/s processed")

        # /metrics parses; counters add up.
        fam = server.metrics()
        ok = (sample_metric(fam, "ropescale_requests", status="200") or 0) >= 30 and \
             (sample_metric(fam, "ropescale_requests", status="400") or 0) >= 10 and \
             sample_metric(fam, "ropescale_requests_by_rope", rope="yarn:8.0") is not None and \
             sample_metric(fam, "ropescale_kv_bytes_budget") > 0 and sample_metric(fam, "ropescale_sessions_busy") == 0
        c.check(ok, "/metrics parses with prometheus_client; statuses, rope settings, KV budget and sessions reported")

        # A client killed mid-stream frees its session.
        body = json.dumps({"prompt": "And", "max_tokens": 4000, "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode() +
                     b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while b"data: " not in got:
            got += sock.recv(4096)
        sock.shutdown(socket.SHUT_RDWR)  # gone, mid-stream
        sock.close()
        freed = False
        for _ in range(200):
            fam = server.metrics()
            if sample_metric(fam, "ropescale_sessions_busy") == 0 and (sample_metric(fam, "ropescale_sessions_cancelled") or 0) >= 1:
                freed = True
                break
            time.sleep(0.1)
        c.check(freed, "a client killed mid-stream frees its session (sessions_busy 0, sessions_cancelled_total ≥ 1)")
    finally:
        rc = server.stop()
    c.check(rc == 0, "SIGTERM on an idle server: exit 0", f"exit {rc}")

    # A full queue answers 429 with Retry-After, and recovers; SIGTERM mid-stream drains.
    small = Server(binary, "--api-key", KEY, "--parallel", "1", "--queue", "0")
    try:
        with ThreadPoolExecutor(6) as pool:
            burst = list(pool.map(lambda _: small.request("POST", "/v1/completions", {"prompt": "And", "max_tokens": 300}),
                                  range(6)))
        codes = sorted(s for s, _, _ in burst)
        c.check(429 in codes and 200 in codes and all(h.get("Retry-After") == "1" for s, h, _ in burst if s == 429)
                and set(codes) <= {200, 429}, "a burst past --parallel 1 --queue 0: 429s with Retry-After", str(codes))
        status, _, _ = small.request("POST", "/v1/completions", {"prompt": "And", "max_tokens": 5})
        c.check(status == 200, "after the burst the server serves again")
        lines = []

        def stream():
            conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=60)
            conn.request("POST", "/v1/completions", json.dumps({"prompt": "And", "max_tokens": 1500, "stream": True,
                                                                "temperature": 0}),
                         {"Authorization": f"Bearer {KEY}"})
            resp = conn.getresponse()
            for line in resp:
                if line.strip():
                    lines.append(line.decode().strip())
        reader = threading.Thread(target=stream)
        reader.start()
        while not lines:
            time.sleep(0.01)
        small.proc.send_signal(signal.SIGTERM)
        reader.join(60)
        rc = small.proc.wait(60)
        chunks = [json.loads(l[6:]) for l in lines if l.startswith("data: {")]
        finish = chunks[-1]["choices"][0]["finish_reason"] if chunks and chunks[-1].get("choices") else None
        text = "".join(ch["choices"][0]["text"] for ch in chunks if ch.get("choices"))
        c.check(rc == 0 and lines[-1] == "data: [DONE]" and finish in ("length", "stop") and len(text) > 100,
                "SIGTERM mid-stream: the stream runs to its end (finish_reason, [DONE]) and the server exits 0",
                f"exit {rc}, finish {finish}, {len(text)} characters")
    finally:
        small.stop(signal.SIGKILL)

    # --stream-interval 8: the same text, sent in groups of up to 8 tokens (one event per group).
    grouped = Server(binary, "--api-key", KEY, "--stream-interval", "8")
    try:
        body = {"prompt": "And God said", "max_tokens": 64, "temperature": 0}
        _, _, whole = grouped.complete(body)
        conn = http.client.HTTPConnection("127.0.0.1", grouped.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}), {"Authorization": f"Bearer {KEY}"})
        events = [l.decode().strip() for l in conn.getresponse() if l.strip()]
        conn.close()
        chunks = [json.loads(l[6:]) for l in events if l.startswith("data: {")]
        text = "".join(ch["choices"][0]["text"] for ch in chunks)
        c.check(text == whole["choices"][0]["text"] and events[-1] == "data: [DONE]" and 2 <= len(chunks) <= 64 // 8 + 2,
                "--stream-interval 8: the non-streamed text, in groups (64 tokens in at most 10 events)",
                f"{len(chunks)} events, same text: {text == whole['choices'][0]['text']}")
    finally:
        grouped.stop()

    # A KV window bounds what a request holds: 1502 tokens would need 2.9 MiB of f32 cache (2048 bytes a
    # token on this model), over a 1 MiB --kv-budget; with a 96 + 4 window it holds 100 tokens' worth.
    windowed = Server(binary, "--api-key", KEY, "--kv-budget", "1", "--kv-window", "96", "--kv-sinks", "4")
    plain = Server(binary, "--api-key", KEY, "--kv-budget", "1")
    try:
        status, _, body = windowed.complete({"prompt": "And", "max_tokens": 1500, "temperature": 0})
        usage = body.get("usage", {})
        c.check(status == 200 and usage.get("completion_tokens") == 1500,
                "--kv-window 96 --kv-sinks 4: a 1502-token request runs under a 1 MiB KV budget", f"{status} {usage}")
        status, _, body = plain.complete({"prompt": "And", "max_tokens": 1500, "temperature": 0})
        c.check(status == 400 and "KV cache" in json.dumps(body), "without the window the same request is refused by the budget",
                f"{status} {json.dumps(body)[:120]}")
    finally:
        windowed.stop(signal.SIGKILL)
        plain.stop(signal.SIGKILL)
    print(f"serve oracle: {c.passed} passed, {c.failed} failed", flush=True)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
