#!/usr/bin/env python3
"""ropescale beside llama.cpp on the same GGUF files and the same token ids.

Run through scripts/bench-llamacpp.sh, which builds llama.cpp first. Standard
library only. Every measurement is a pair — llama.cpp, then ropescale, on the
same shape — repeated and interleaved, so drift on a shared VM hits both; the
medians are compared. Ratio = ropescale speed ÷ llama.cpp speed (> 1: ropescale
is faster). Each program's own compute time is compared: llama.cpp's
"prompt eval time" / llama-bench's tokens/s, ropescale's per-result
compute seconds / `bench model` tokens/s; loading and tokenizing are excluded
on both sides.

Perplexity: llama-perplexity tokenizes the text, cuts it into windows of n_ctx
tokens, puts BOS at the start of each and scores the second half of every
window. ropescale gets llama.cpp's own ids (from llama-tokenize) with the same
BOS replacements, evaluates the same windows, and the mean NLL over the same
positions is compared with llama.cpp's final estimate (printed to 4 decimals).
Both sides use an f16 KV cache (llama.cpp's default).
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

MODELS = {
    # name: (GGUF (made by `ropescale convert` when it is a llama2.c file), text, trained length)
    "stories260K": ("../shared/models/stories260K/stories260K.bin", "../shared/data/tinystories_valid_head.txt", 512),
    "default": ("models/ropescale-kjv-256.gguf", "build/data/kjv_heldout.txt", 256),
}


DISAGREEMENTS = []  # perplexities that do not agree: the run fails


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, timeout=1800):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def gguf_for(name, args, work):
    path, text, trained = MODELS[name]
    if not os.path.exists(path) or not os.path.exists(text):
        log(f"bench-llamacpp: SKIPPING {name}: {path if not os.path.exists(path) else text} is absent")
        return None
    if path.endswith(".gguf"):
        return path, text, trained
    out = os.path.join(work, name + ".gguf")
    tok = os.path.join(os.path.dirname(path), "tok512.bin")
    run([args.ropescale, "convert", "--model", path, "--tokenizer", tok, "--out", out])
    return out, text, trained


def llama_ids(args, gguf, text, n):
    """llama.cpp's own tokenization of the text (BOS first), the first n ids."""
    p = run([os.path.join(args.llamacpp_bin, "llama-tokenize"), "-m", gguf, "-f", text, "--ids", "--log-disable"])
    m = re.search(r"\[([0-9,\s]+)\]", p.stdout)
    if not m:
        raise RuntimeError("llama-tokenize printed no id list")
    ids = [int(x) for x in m.group(1).split(",") if x.strip()]
    if len(ids) < n:
        raise RuntimeError(f"{text} has {len(ids)} tokens, fewer than the {n} needed")
    return ids[:n]


def yarn_flags(factor, trained):
    if factor <= 1:
        return "none", []
    return f"yarn:{factor:g}", ["--rope-scaling", "yarn", "--rope-scale", f"{factor:g}", "--yarn-orig-ctx", str(trained)]


def llama_perplexity(args, gguf, text, window, chunks, threads, fa, rope_flags, kv="f16"):
    cmd = [os.path.join(args.llamacpp_bin, "llama-perplexity"), "-m", gguf, "-f", text, "-c", str(window),
           "-b", str(window), "-ub", str(window), "-t", str(threads), "-tb", str(threads), "-fa", fa,
           "--chunks", str(chunks), "-ngl", "0", "-ctk", kv, "-ctv", kv] + rope_flags
    p = run(cmd)
    out = p.stdout + p.stderr
    # Compute time: from the log's time stamp (minutes.seconds.ms.µs) on "calculating perplexity" to the one on
    # "Final estimate" — the windows' forward passes and scoring, after loading and tokenizing.
    stamp = r"(\d+)\.(\d+)\.(\d+)\.(\d+) I "
    start = re.search(stamp + r"perplexity: calculating perplexity over (\d+) chunks", out)
    end = re.search(stamp + r"Final estimate: PPL = ([0-9.]+)", out)
    if not start or not end:
        raise RuntimeError("llama-perplexity printed no time-stamped start or final estimate:\n" + out[-2000:])

    def seconds(m):
        return int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6

    return {"ppl": float(end.group(5)), "seconds": seconds(end) - seconds(start), "tokens": int(start.group(5)) * window}


def ropescale_perplexity(args, gguf, ids_file, window, n_tokens, threads, method, kv="f16"):
    cmd = [args.ropescale, "eval", "ppl", "--model", gguf, "--ids", ids_file, "--ctx", str(window), "--tokens",
           str(n_tokens), "--methods", method, "--threads", str(threads), "--kv-cache", kv, "--bucket", "1",
           "--json", "-", "--quiet"]
    r = json.loads(run(cmd).stdout)["results"][0]
    # llama.cpp scores the tokens at window positions n_ctx/2+1 … n_ctx-1.
    first = window // 2 + 1
    nll = sum(b["nll"] * b["tokens"] for b in r["buckets"] if b["start"] >= first and b["tokens"])
    count = sum(b["tokens"] for b in r["buckets"] if b["start"] >= first and b["tokens"])
    return {"ppl": math.exp(nll / count), "seconds": r["seconds"], "tokens": r["windows"] * window}


def perplexity_suite(args, work, results):
    for name in args.models:
        g = gguf_for(name, args, work)
        if not g:
            continue
        gguf, text, trained = g
        for window in args.windows:
            chunks = max(2, args.tokens // window)
            n = chunks * window
            ids = llama_ids(args, gguf, text, n)
            bos = ids[0]
            for k in range(0, n, window):
                ids[k] = bos
            ids_file = os.path.join(work, f"{name}-{window}.ids")
            with open(ids_file, "w") as f:
                f.write(" ".join(map(str, ids)) + "\n")
            method, rope_flags = yarn_flags(window / trained, trained)
            window_gguf = gguf
            if args.rope_in_file and rope_flags:
                # The scaling written into the file by `ropescale convert`: no rope flags for either engine.
                window_gguf = os.path.join(work, f"{name}-{method.replace(':', '')}.gguf")
                run([args.ropescale, "convert", "--model", gguf, "--out", window_gguf, "--rope-scaling",
                     json.dumps({"rope_type": "yarn", "factor": window / trained})])
                method, rope_flags = method + " (in the file)", []
            ropescale_method = "model" if args.rope_in_file else method
            # Agreement with f32 caches on both sides: llama.cpp's f16 path also rounds Q to f16 for K·Q, a
            # difference of precision rather than of method that grows with the length.
            log(f"  ppl {name} window {window} ({method}): agreement run, f32 KV caches")
            agreement = {"llama.cpp": llama_perplexity(args, window_gguf, text, window, chunks, max(args.threads), "off",
                                                       rope_flags, "f32")["ppl"],
                         "ropescale": ropescale_perplexity(args, window_gguf, ids_file, window, n, max(args.threads),
                                                           ropescale_method, "f32")["ppl"]}
            for threads in args.threads:
                runs = {"llama.cpp fa off": [], "llama.cpp fa on": [], "ropescale": []}
                for rep in range(args.repeats):
                    log(f"  ppl {name} window {window} ({method}) threads {threads}, repeat {rep + 1}/{args.repeats}")
                    runs["llama.cpp fa off"].append(llama_perplexity(args, window_gguf, text, window, chunks, threads, "off",
                                                                     rope_flags))
                    runs["llama.cpp fa on"].append(llama_perplexity(args, window_gguf, text, window, chunks, threads, "on",
                                                                    rope_flags))
                    runs["ropescale"].append(ropescale_perplexity(args, window_gguf, ids_file, window, n, threads,
                                                                  ropescale_method))
                row = {"work": "perplexity", "model": name, "window": window, "method": method, "threads": threads,
                       "tokens": n, "ppl_f32_kv": agreement}
                for k, v in runs.items():
                    row[k] = {"tokens_per_s": statistics.median(x["tokens"] / x["seconds"] for x in v),
                              "ppl": v[0]["ppl"]}
                results.append(row)
                report_row(row)


def llama_bench(args, gguf, threads, prompt, gen, depth):
    cmd = [os.path.join(args.llamacpp_bin, "llama-bench"), "-m", gguf, "-t", str(threads), "-p", str(prompt), "-n",
           str(gen), "-d", str(depth), "-fa", "0,1", "-r", "1", "-ngl", "0", "-o", "json"]
    if prompt:
        cmd += ["-b", str(prompt), "-ub", f"512,{prompt}" if prompt > 512 else str(prompt)]
    best = {}
    for x in json.loads(run(cmd).stdout):
        key = "llama.cpp fa on" if x.get("flash_attn") in (True, 1, "1", "on", "enabled") else "llama.cpp fa off"
        best[key] = max(best.get(key, 0.0), float(x["avg_ts"]))
    return best


def ropescale_bench(args, gguf, threads, ctx, decode_tokens):
    cmd = [args.ropescale, "bench", "model", "--model", gguf, "--ctx", str(ctx), "--threads", str(threads),
           "--decode-tokens", str(decode_tokens), "--kv-cache", "f16", "--json"]
    r = json.loads(run(cmd).stdout)["results"][0]
    return r["prefill_tokens_per_s"], r["decode_tokens_per_s"]


def model_suite(args, work, results):
    for name in args.bench_models:
        g = gguf_for(name, args, work)
        if not g:
            continue
        gguf = g[0]
        for ctx in args.windows:
            for threads in args.threads:
                pre = {"llama.cpp fa off": [], "llama.cpp fa on": [], "ropescale": []}
                dec = {"llama.cpp fa off": [], "llama.cpp fa on": [], "ropescale": []}
                for rep in range(args.repeats):
                    log(f"  prefill/decode {name} at {ctx} threads {threads}, repeat {rep + 1}/{args.repeats}")
                    for k, v in llama_bench(args, gguf, threads, ctx, 0, 0).items():
                        pre[k].append(v)
                    for k, v in llama_bench(args, gguf, threads, 0, args.decode_tokens, ctx).items():
                        dec[k].append(v)
                    p, d = ropescale_bench(args, gguf, threads, ctx, args.decode_tokens)
                    pre["ropescale"].append(p)
                    dec["ropescale"].append(d)
                for work_name, runs in (("prefill", pre), ("decode", dec)):
                    row = {"work": work_name, "model": name, "window": ctx, "threads": threads}
                    for k, v in runs.items():
                        row[k] = {"tokens_per_s": statistics.median(v)}
                    results.append(row)
                    report_row(row)


def ratio(row, key):
    return row["ropescale"]["tokens_per_s"] / row[key]["tokens_per_s"]


def report_row(row):
    what = f"{row['work']:<10} {row['model']:<11} {row['window']:>5} {row.get('method', ''):<8} {row['threads']}t"
    speeds = "  ".join(f"{k.replace('llama.cpp ', '')} {v['tokens_per_s']:8.0f}" for k, v in row.items()
                       if isinstance(v, dict) and "tokens_per_s" in v)
    r = f"ratio vs fa off {ratio(row, 'llama.cpp fa off'):5.2f}, fa on {ratio(row, 'llama.cpp fa on'):5.2f}"
    agree = ""
    if "ppl_f32_kv" in row:
        a, b = row["ppl_f32_kv"]["ropescale"], row["ppl_f32_kv"]["llama.cpp"]
        # llama.cpp prints 4 decimals: agreement means within its rounding plus 2e-5 relative.
        ok = abs(a - b) <= 5e-5 + 2e-5 * b
        if not ok:
            DISAGREEMENTS.append(f"{row['model']} window {row['window']}: {a} vs {b}")
        agree = f"  ppl (f32 KV) {a:.4f} vs {b:.4f} ({'agree' if ok else 'DIFFER'})"
        agree += f"; f16 KV {row['ropescale']['ppl']:.4f} vs {row['llama.cpp fa off']['ppl']:.4f}"
    print(f"{what}  tok/s: {speeds}  {r}{agree}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ropescale", required=True)
    ap.add_argument("--llamacpp-bin", required=True, help="folder with llama-perplexity, llama-bench, llama-tokenize")
    ap.add_argument("--llamacpp-version", default="unknown")
    ap.add_argument("--models", default="stories260K,default", help="perplexity models")
    ap.add_argument("--bench-models", default="default", help="prefill/decode models")
    ap.add_argument("--windows", default="2048,8192", help="window / context lengths")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tokens", type=int, default=16384, help="tokens per perplexity run (at least 2 windows)")
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repeat, 2048 only, 2 threads only")
    ap.add_argument("--rope-in-file", action="store_true",
                    help="write each window's YaRN scaling into a GGUF (ropescale convert) and pass no rope flags")
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--json", help="write every measurement to FILE")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.windows, args.threads = 1, "2048", "2"
    args.models = [m for m in args.models.split(",") if m]
    args.bench_models = [m for m in args.bench_models.split(",") if m]
    for m in args.models + args.bench_models:
        if m not in MODELS:
            ap.error(f"--models: unknown model '{m}' (known: {', '.join(MODELS)})")
    args.windows = [int(x) for x in args.windows.split(",")]
    args.threads = [int(x) for x in args.threads.split(",")]

    results = []
    print(f"ropescale vs llama.cpp ({args.llamacpp_version}); ratio = ropescale tokens/s ÷ llama.cpp tokens/s, "
          f"median of {args.repeats} interleaved runs, f16 KV cache on both sides", flush=True)
    with tempfile.TemporaryDirectory(prefix="ropescale-bench-") as work:
        if not args.skip_ppl:
            perplexity_suite(args, work, results)
        if not args.skip_model:
            model_suite(args, work, results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"llama.cpp": args.llamacpp_version, "repeats": args.repeats, "results": results}, f, indent=2)
    worst = min((min(ratio(r, "llama.cpp fa off"), ratio(r, "llama.cpp fa on")) for r in results), default=None)
    if worst is not None:
        print(f"slowest ratio over every shape (against llama.cpp's faster flash-attention setting): {worst:.2f}")
    if DISAGREEMENTS:
        print("bench-llamacpp: FAILED — perplexities differ: " + "; ".join(DISAGREEMENTS), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
