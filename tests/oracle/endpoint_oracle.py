"""`ropescale eval --endpoint` against two servers nobody here wrote the client for.

1. `ropescale serve` on the default model, each method sent per request as rope_scaling;
2. llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on ropescale's GGUF of
   the same model, one GGUF per method (the setting stored in the file, no flags).

For none / linear ×4 / YaRN ×4 the perplexity through the endpoint must equal the local
`eval ppl --window-bos` (the same windows: BOS + ctx − 1 tokens) to 1e-3 nats, at the trained length
and 4× past it; passkey retrieval through each server must give the local greedy answers, ranks and
needle log-probabilities. Servers bind 127.0.0.1 on free ports and are always stopped.
Usage: endpoint_oracle.py ROPESCALE_BINARY SHARED_MODELS_DIR
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from oracle_support import Checks, convert, shared_root

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "models", "ropescale-kjv-256.gguf")
TOL = 1e-3
METHODS = {"none": {"rope_type": "default"},
           "linear:4": {"rope_type": "linear", "factor": 4.0},
           "yarn:4": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}}
CTXS = "256,1024"
TOKENS = "4096"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server process, always stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, cmd, url_from_stdout=False, port=None):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if url_from_stdout:  # ropescale: "ropescale: serving … on http://127.0.0.1:PORT — …"
            line = self.proc.stdout.readline()
            if "http://127.0.0.1:" not in line:
                self.stop()
                raise RuntimeError(f"ropescale serve did not start: {line!r}")
            port = int(line.split("http://127.0.0.1:")[1].split()[0])
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    out = self.proc.stdout.read()[-2000:] if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"{cmd[0]} did not answer on {self.url}: {out}")
                time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_json(binary, args):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        p = subprocess.run([binary, *args, "--json", f.name, "--quiet"], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed ({p.returncode}): {p.stderr[-2000:]}")
        return json.load(open(f.name))


def ppl_table(j):
    return {(r["method"], r["ctx"]): r for r in j["results"]}


def compare_ppl(c, label, endpoint_json, local_json, methods):
    ep, lo = ppl_table(endpoint_json), ppl_table(local_json)
    for m in methods:
        for ctx in map(int, CTXS.split(",")):
            a, b = ep.get((m, ctx)), lo.get((m, ctx))
            if not (a and b):
                c.check(False, f"{label} {m} ctx {ctx}: a result on both sides")
                continue
            d = abs(a["nll"] - b["nll"])
            c.check(d <= TOL and a["tokens"] == b["tokens"],
                    f"{label} {m} ctx {ctx}: endpoint NLL = local --window-bos NLL",
                    f"{a['nll']:.6f} vs {b['nll']:.6f} (|Δ| {d:.2e}, tol {TOL}), {a['tokens']} vs {b['tokens']} tokens")


def compare_passkey(c, label, endpoint_json, local_json):
    ep, lo = endpoint_json["passkey"]["trials"], local_json["passkey"]["trials"]
    same = len(ep) == len(lo) and all(a["generated"] == b["generated"] and a["rank"] == b["rank"] for a, b in zip(ep, lo))
    worst = max((abs(a["key_logprob"] - b["key_logprob"]) for a, b in zip(ep, lo)), default=float("inf"))
    c.check(same and worst <= TOL, f"{label} passkey: greedy answers, ranks and needle log-probs equal the local run",
            f"{len(ep)} trials, worst |Δ log p(key)| {worst:.2e}")
    for a, b in zip(ep, lo):
        print(f"     length {a['length']} depth {a['depth']}: {a['generated']!r} / {b['generated']!r}, rank {a['rank']} / "
              f"{b['rank']}, log p(key) {a['key_logprob']:.5f} / {b['key_logprob']:.5f}", flush=True)


def run_code(binary, args):
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout, p.stderr


def main():
    binary = sys.argv[1]
    text = os.path.join(shared_root(sys.argv[2]), "data", "kjv_genesis.txt")
    if not os.path.exists(text):
        print(f"SKIPPED LOUDLY: {text} is absent", flush=True)
        return 77
    try:
        import llama_cpp.server  # noqa: F401  (its server extras: fastapi, uvicorn, …)
        import uvicorn  # noqa: F401
        have_llama_server = True
    except Exception as e:
        print(f"SKIPPED LOUDLY (llama-cpp-python server part): {e}", flush=True)
        have_llama_server = False
    c = Checks()
    names = list(METHODS)
    ppl_args = ["--text", text, "--tokens", TOKENS, "--ctx", CTXS]
    pk_args = ["--lengths", "256,1024", "--depths", "0,0.5,1", "--trials", "1", "--alternatives", "4"]
    local_ppl = run_json(binary, ["eval", "ppl", "--model", MODEL, "--window-bos", "--methods", ",".join(names), *ppl_args])
    local_pk = run_json(binary, ["eval", "passkey", "--model", MODEL, "--methods", ",".join(names), *pk_args])
    task_args = ["--lengths", "256", "--depths", "0.5", "--trials", "1", "--tasks", "all", "--task-wording", "compact"]
    local_tasks = run_json(binary, ["eval", "tasks", "--model", MODEL, "--methods", ",".join(names), *task_args])
    work = tempfile.TemporaryDirectory()
    golden = os.path.join(work.name, "golden.json")

    # 1. ropescale's own server: one server, the setting chosen per request.
    with Process([binary, "serve", "--model", MODEL, "--port", "0", "--threads", "2"], url_from_stdout=True) as s:
        ep = run_json(binary, ["eval", "ppl", "--model", MODEL, "--endpoint", s.url, "--endpoint-rope", *names, *ppl_args])
        compare_ppl(c, "ropescale serve", ep, local_ppl, names)
        c.check(ep.get("endpoint", "").startswith(s.url), "the JSON names the endpoint", ep.get("endpoint", ""))
        pk = run_json(binary, ["eval", "passkey", "--model", MODEL, "--endpoint", s.url + "/v1", "--endpoint-rope", *names, *pk_args])
        compare_passkey(c, "ropescale serve", pk, local_pk)
        tk = run_json(binary, ["eval", "tasks", "--model", MODEL, "--endpoint", s.url, "--endpoint-rope", *names, *task_args])
        tk_ok = len(tk["tasks"]["trials"]) == len(local_tasks["tasks"]["trials"]) and all(
            a["generated"] == b["generated"] and abs(a["needle_nll"] - b["needle_nll"]) <= TOL
            for a, b in zip(tk["tasks"]["trials"], local_tasks["tasks"]["trials"]))
        c.check(tk_ok, "ropescale serve tasks: greedy answers and needle NLL equal the local run",
                f"{len(tk['tasks']['trials'])} trials")
        # A golden set recorded through ropescale serve, for the cross-engine compare below.
        code, _, err = run_code(binary, ["golden", "record", "--model", MODEL, "--endpoint", s.url, "--endpoint-rope",
                                         "yarn:4", *ppl_args, "--lengths", "256,1024", "--depths", "0,1", "--trials", "1",
                                         "--tasks", "kv", "--task-wording", "compact", "--quiet", "--out", golden])
        c.check(code == 0, "golden record through ropescale serve", err[-300:] if code else "")
    # The same golden set re-run here on the runtime (its windows BOS-led, as the endpoint's were).
    code, out, err = run_code(binary, ["golden", "compare", golden, "--runtime", "--quiet"])
    c.check(code == 0, "golden compare --runtime of the set recorded through ropescale serve passes",
            err[-300:] if code else "")

    # 2. llama-cpp-python's server, one GGUF per method (llama.cpp reads the setting from the file).
    if have_llama_server:
        with tempfile.TemporaryDirectory() as tmp:
            for name, rope in METHODS.items():
                gguf = os.path.join(tmp, name.replace(":", "") + ".gguf")
                convert(binary, MODEL, gguf, rope)
                port = free_port()
                # An f32 KV cache (ggml type 0), as ropescale's default: llama.cpp's own default, f16, moves a
                # key's log-probability by up to ~1e-2 at 1024 tokens (measured), which is the cache, not the rope.
                cmd = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port",
                       str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false", "--type_k", "0",
                       "--type_v", "0"]
                with Process(cmd, port=port) as s:
                    ep = run_json(binary, ["eval", "ppl", "--model", gguf, "--endpoint", s.url, "--endpoint-rope", name,
                                           "--concurrency", "1", *ppl_args])
                    compare_ppl(c, "llama-cpp-python server", ep, local_ppl, [name])
                    # The golden set recorded on ropescale serve with YaRN ×4, re-run on llama.cpp: the same
                    # deployment passes; plain RoPE (the "none" GGUF) fails it past the trained length.
                    if name in ("yarn:4", "none") and os.path.exists(golden):
                        code, out, err = run_code(binary, ["golden", "compare", golden, "--model", gguf, "--endpoint",
                                                           s.url, "--json", "-"])
                        want = 0 if name == "yarn:4" else 1
                        verdict = json.loads(out) if out.strip().startswith("{") else {}
                        failed = [f"{x['gate']} {x['length']}" for x in verdict.get("checks", []) if not x["pass"]]
                        c.check(code == want, f"golden compare (recorded on ropescale serve, yarn:4) on llama-cpp-python "
                                f"serving {name}: exit {want}",
                                f"failed gates: {failed[:4]}" + (f" — {err[-300:]}" if code != want else ""))
                    if name == "yarn:4":
                        pk = run_json(binary, ["eval", "passkey", "--model", gguf, "--endpoint", s.url,
                                               "--endpoint-rope", name, "--concurrency", "1", *pk_args])
                        lo = dict(local_pk)
                        lo["passkey"] = {"trials": [t for t in local_pk["passkey"]["trials"] if t["method"] == name]}
                        compare_passkey(c, "llama-cpp-python server", pk, lo)

    work.cleanup()
    print(f"endpoint oracle: {c.passed} passed, {c.failed} failed", flush=True)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
