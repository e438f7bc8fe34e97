#!/usr/bin/env python3
"""Load test for `ropescale serve`: N concurrent clients × M requests each, mixing
short prompts and prompts at 8× the trained context, several RoPE settings, and
malformed requests interleaved. Standard library only; the server binds
127.0.0.1 on a free port and is always stopped.

Checks: no 5xx and no crash; every good response equals the same request served
alone (temperature 0); every malformed one gets a 4xx OpenAI error object; the
server's peak memory (VmHWM) stays within the KV budget plus the weights (and a
fixed allowance for the runtime); /metrics counts what was sent. Reports p50/p99
latency and aggregate tokens/s. Exit 0 when every check passes.

  scripts/load_serve.py [--clients 8] [--requests 25] [--kv-budget 64] [--json F]
"""
import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MALFORMED = [b'{"prompt":', b'{"prompt":""}', b'{"prompt":"x","max_tokens":-1}', b'{"prompt":[1,2,99999]}',
             b'{"prompt":"x","rope_scaling":{"rope_type":"yarn","factor":0}}',
             b'{"prompt":"x","rope_scaling":{"rope_type":"yarn","factor":"NaN"}}',
             b'{"prompt":"x","rope_scaling":{"rope_type":"nope"}}', b'{"prompt":"x","temperature":"hot"}',
             b'{"prompt":"x","rope_policy":"sometimes"}', b'[' * 64 + b']' * 64]


def post(port, body):
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", body if isinstance(body, bytes) else json.dumps(body))
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, json.loads(payload), time.perf_counter() - t0


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ropescale", default=os.path.join(ROOT, "build", "ropescale"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ropescale-kjv-256.gguf"))
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "data", "kjv_genesis.txt"))
    ap.add_argument("--trained", type=int, default=256, help="the model's trained context (tokens)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=25, help="requests per client")
    ap.add_argument("--kv-budget", type=float, default=64, help="MiB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the measurements to FILE")
    args = ap.parse_args()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    long_chars = 8 * args.trained - 64  # one token per byte (the default model)
    kinds = [{"prompt": "In the beginning", "max_tokens": 32},
             {"prompt": text[30000:30000 + long_chars], "max_tokens": 32},
             {"prompt": "And the LORD said", "max_tokens": 24, "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
             {"prompt": text[40000:40000 + 3 * args.trained], "max_tokens": 16, "rope_policy": "dynamic"},
             {"prompt": "Let there be light", "max_tokens": 48, "rope_policy": "none", "stop": ["\n"]},
             {"prompt": text[50000:50000 + long_chars // 2], "max_tokens": 24,
              "rope_scaling": {"rope_type": "yarn", "factor": 8.0}},
             {"prompt": text[60000:60100], "max_tokens": 24, "echo": True, "logprobs": 2}]
    for k in kinds:
        k["temperature"] = 0
    server = subprocess.Popen([args.ropescale, "serve", "--model", args.model, "--port", "0", "--parallel", "8",
                               "--queue", str(args.clients * 2), "--kv-budget", str(args.kv_budget), "--threads",
                               str(args.threads)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        port = int(server.stdout.readline().split("http://127.0.0.1:")[1].split()[0])
        base_rss = vm_hwm(server.pid)
        alone = []
        for k in kinds:
            status, body, _ = post(port, k)
            if status != 200:
                failures.append(f"alone: {status} {body}")
            alone.append(body["choices"][0]["text"] if status == 200 else None)
        rng = random.Random(3)
        plan = []
        for c in range(args.clients):
            for i in range(args.requests):
                plan.append(("bad", rng.choice(MALFORMED)) if rng.random() < 0.2 else ("good", rng.randrange(len(kinds))))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda p: post(port, p[1] if p[0] == "bad" else kinds[p[1]]), plan))
        wall = time.perf_counter() - t0
        lat, tokens, bad_ok, good_ok = [], 0, 0, 0
        for (kind, which), (status, body, seconds) in zip(plan, results):
            if status >= 500:
                failures.append(f"{status}: {body}")
            if kind == "bad":
                if 400 <= status < 500 and body.get("error", {}).get("message"):
                    bad_ok += 1
                else:
                    failures.append(f"malformed request answered {status}: {body}")
                continue
            lat.append(seconds)
            if status == 200 and body["choices"][0]["text"] == alone[which]:
                good_ok += 1
                tokens += body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
            else:
                failures.append(f"request kind {which}: {status}, differs from alone")
        peak = vm_hwm(server.pid)
        _, _, metrics = None, None, None
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        model_bytes = os.path.getsize(args.model)
        allowance = 64 << 20  # runtime, thread stacks, per-request activations
        if peak > base_rss + args.kv_budget * (1 << 20) + allowance:
            failures.append(f"peak memory {peak / 2**20:.0f} MiB exceeds {base_rss / 2**20:.0f} MiB at start + "
                            f"{args.kv_budget:.0f} MiB KV budget + {allowance >> 20} MiB")
        lat.sort()
        report = {"clients": args.clients, "requests": len(plan), "good": good_ok, "malformed_answered_4xx": bad_ok,
                  "seconds": wall, "tokens_per_s": tokens / wall, "latency_p50_s": lat[len(lat) // 2],
                  "latency_p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "peak_rss_mib": peak / 2**20,
                  "start_rss_mib": base_rss / 2**20, "model_mib": model_bytes / 2**20, "kv_budget_mib": args.kv_budget,
                  "failures": failures[:20]}
        print(f"{len(plan)} requests from {args.clients} clients in {wall:.1f} s: {good_ok} good (each = alone), "
              f"{bad_ok} malformed → 4xx, no 5xx: {not any(f[:1] == '5' for f in failures)}")
        print(f"  {tokens / wall:.0f} tokens/s processed (prompt + completion); latency p50 {report['latency_p50_s']:.2f} s, "
              f"p99 {report['latency_p99_s']:.2f} s")
        print(f"  peak RSS {peak / 2**20:.0f} MiB (at start {base_rss / 2**20:.0f} MiB, model file {model_bytes / 2**20:.1f} MiB, "
              f"KV budget {args.kv_budget:.0f} MiB)")
        print(f"  /metrics: {sum(1 for l in metrics.splitlines() if l.startswith('ropescale_requests_total'))} status lines")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        server.send_signal(signal.SIGTERM)
        rc = server.wait(60)
    if rc != 0:
        failures.append(f"server exit {rc}")
    for f in failures[:10]:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
