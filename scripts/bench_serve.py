#!/usr/bin/env python3
"""Aggregate decode throughput of `ropescale serve` with 1, 4 and 8 concurrent
streams, against `ropescale generate` alone on the same prompt in the same run,
and latency percentiles. Standard library only; the server binds 127.0.0.1 on a
free port and is always stopped.

  scripts/bench_serve.py [--model M] [--tokens 256] [--streams 1,4,8] [--stream-intervals 1,8] [--repeats 3]
                         [--threads 2] [--json F]

Two rates for each row: end to end (tokens ÷ wall time, the prompt's prefill
included) and decode (each stream's tokens after its first read ÷ the time after
it, summed over the streams: the rate generate --timings reports for itself).
Ratios: server 1-stream decode ÷ generate's decode (the medians, and the median of
paired runs: each 1-stream request right after a generate run) and ÷ the same decode
loop in `ropescale bench model`; batching = server N-stream aggregate ÷ server 1-stream,
end to end and decode, for each --stream-interval the server is started with
(tokens sent in groups of up to N). Tokens are counted as bytes of text (byte-level
models: one token per byte).
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stream(port, prompt, tokens, out):
    """One streaming request; the events are read raw while timed and parsed afterwards, so the
    client spends as little CPU as it can beside the server on the same cores."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0,
                                                        "stream": True}))
    resp = conn.getresponse()
    first, raw = None, []
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        if first is None:
            first = time.perf_counter() - t0
        raw.append(chunk)
    seconds = time.perf_counter() - t0

    def text_of(data):
        return "".join(json.loads(line[6:])["choices"][0]["text"] for line in data.decode(errors="replace").splitlines()
                       if line.startswith("data: {"))

    n = len(text_of(b"".join(raw)).encode())
    # Tokens that arrived with the first read (the prefill's token, or a first group of them): the
    # decode rate counts the tokens after them over the time after them, as generate --timings does.
    at_first = len(text_of(raw[0]).encode()) if raw else 0
    decode = (n - at_first) / (seconds - first) if raw and seconds > first else 0.0
    out.append({"seconds": seconds, "first_token": first, "bytes": n, "decode_tokens_per_s": decode})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ropescale", default=os.path.join(ROOT, "build", "ropescale"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "ropescale-kjv-256.gguf"))
    ap.add_argument("--prompt", default="And God said, Let there be light: and there was light.")
    ap.add_argument("--tokens", type=int, default=256, help="tokens generated per stream")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stream-intervals", default="1,8", help="serve --stream-interval values, one server each")
    ap.add_argument("--json", help="write the measurements to FILE")
    args = ap.parse_args()
    streams = [int(x) for x in args.streams.split(",")]

    # ropescale generate alone: wall time of the whole command (load, prefill, decode), and its own
    # decode rate (--timings: tokens after the first ÷ their time), medians.
    def generate_once():
        t0 = time.perf_counter()
        r = subprocess.run([args.ropescale, "generate", "--model", args.model, "--prompt", args.prompt, "--max-tokens",
                            str(args.tokens), "--rope-scaling", '{"rope_type":"default"}', "--threads", str(args.threads),
                            "--timings"], check=True, capture_output=True, text=True)
        return time.perf_counter() - t0, float(r.stderr.rsplit("(", 1)[1].split()[0])

    gen, gen_decode = [], []
    for _ in range(args.repeats):
        wall, rate = generate_once()
        gen.append(wall)
        gen_decode.append(rate)
    gen_tps = args.tokens / statistics.median(gen)
    gen_decode_tps = statistics.median(gen_decode)
    # The same decode loop without the process start and model load: `ropescale bench model`.
    dec = []
    for _ in range(args.repeats):
        r = subprocess.run([args.ropescale, "bench", "model", "--model", args.model, "--ctx", "16", "--decode-tokens",
                            str(args.tokens), "--threads", str(args.threads), "--json"], check=True, capture_output=True, text=True)
        dec.append(json.loads(r.stdout)["results"][0]["decode_tokens_per_s"])
    decode_tps = statistics.median(dec)

    rows = []
    for interval in [int(x) for x in args.stream_intervals.split(",")]:
        server = subprocess.Popen([args.ropescale, "serve", "--model", args.model, "--port", "0", "--parallel",
                                   str(max(streams)), "--queue", "64", "--threads", str(args.threads), "--rope-policy", "none",
                                   "--stream-interval", str(interval)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline().split("http://127.0.0.1:")[1].split()[0])
            for n in streams:
                agg, agg_decode, lat, firsts, paired = [], [], [], [], []
                for _ in range(args.repeats):
                    # One stream: each request paired with a generate run just before it (the server idle
                    # meanwhile), so that the machine's drift between runs cancels in the ratio.
                    before = generate_once()[1] if n == 1 else None
                    out = []
                    t0 = time.perf_counter()
                    threads = [threading.Thread(target=stream, args=(port, args.prompt, args.tokens, out)) for _ in range(n)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    wall = time.perf_counter() - t0
                    agg.append(sum(o["bytes"] for o in out) / wall)  # byte-level model: one token per byte
                    agg_decode.append(sum(o["decode_tokens_per_s"] for o in out))  # the streams run side by side
                    if before:
                        paired.append(agg_decode[-1] / before)
                    lat += [o["seconds"] for o in out]
                    firsts += [o["first_token"] for o in out]
                lat.sort()
                rows.append({"stream_interval": interval, "streams": n, "aggregate_tokens_per_s": statistics.median(agg),
                             "aggregate_decode_tokens_per_s": statistics.median(agg_decode),
                             "latency_p50_s": lat[len(lat) // 2], "latency_p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
                             "first_token_p50_s": sorted(firsts)[len(firsts) // 2]})
                if paired:
                    rows[-1]["decode_vs_generate_paired"] = {"median": statistics.median(paired), "min": min(paired),
                                                             "max": max(paired)}
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    print(f"ropescale generate alone ({args.tokens} tokens, median of {args.repeats}, {args.threads} threads): "
          f"{gen_tps:.0f} tokens/s whole command, {gen_decode_tps:.0f} tokens/s decoding (--timings); "
          f"the decode loop alone (bench model): {decode_tps:.0f} tokens/s")
    print("end to end: tokens ÷ wall time, prefill included; decode: each stream's tokens after its first read ÷ the "
          "time after it, summed over the streams")
    for r in rows:
        one = next((o for o in rows if o["streams"] == 1 and o["stream_interval"] == r["stream_interval"]), None)
        extra = ""
        if one and r["streams"] > 1:
            extra = (f"  batching ×{r['aggregate_tokens_per_s'] / one['aggregate_tokens_per_s']:.2f} end to end, "
                     f"×{r['aggregate_decode_tokens_per_s'] / one['aggregate_decode_tokens_per_s']:.2f} decode")
        if r["streams"] == 1:
            pr = r["decode_vs_generate_paired"]
            extra = (f"  decode ÷ generate's {r['aggregate_decode_tokens_per_s'] / gen_decode_tps:.3f} (paired runs: median "
                     f"{pr['median']:.3f}, {pr['min']:.3f}–{pr['max']:.3f}), ÷ the loop's "
                     f"{r['aggregate_decode_tokens_per_s'] / decode_tps:.3f}")
        print(f"serve (interval {r['stream_interval']}) {r['streams']:>2} streams: {r['aggregate_tokens_per_s']:7.0f} end to end, "
              f"{r['aggregate_decode_tokens_per_s']:7.0f} decode tokens/s  latency p50 {r['latency_p50_s']:.2f} s "
              f"p99 {r['latency_p99_s']:.2f} s  first token p50 {r['first_token_p50_s'] * 1000:.0f} ms{extra}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"generate_tokens_per_s": gen_tps, "generate_decode_tokens_per_s": gen_decode_tps,
                       "decode_loop_tokens_per_s": decode_tps, "serve": rows, "tokens": args.tokens, "threads": args.threads}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
