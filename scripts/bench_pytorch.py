#!/usr/bin/env python3
"""ropescale beside PyTorch + Hugging Face transformers on the same CPU.

Run through scripts/bench-pytorch.sh (the oracle virtualenv's python). The
default model is converted by `ropescale convert --to safetensors` and loaded
by transformers' LlamaForCausalLM in float32; both sides read the same token
ids, and the NLLs must agree. Each program's own compute time is compared
(imports, loading, compilation and a warm-up excluded on the PyTorch side;
ropescale's per-result compute seconds). Ratio = ropescale speed ÷ PyTorch
speed (> 1: ropescale is faster). Runs are interleaved pair by pair and the
medians compared.

  perplexity   non-overlapping windows (256 = the trained length, plain RoPE;
               2048 = 8×, YaRN ×8), `sdpa` attention and eager attention
  training     the default model's shape from scratch, 8 sequences × 256
               tokens per AdamW step (ropescale: `ropescale train`; PyTorch: one
               batched forward/backward, grad-norm clip 1, AdamW), eager
               PyTorch and torch.compile
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stdout


def hf_model(args, work, rope, attn):
    name = "plain" if rope is None else f"{rope['rope_type']}{rope['factor']:g}"
    out = os.path.join(work, name)
    if not os.path.isdir(out):
        cmd = [args.ropescale, "convert", "--model", args.model, "--out", out, "--to", "safetensors"]
        if rope:
            cmd += ["--rope-scaling", json.dumps(rope)]
        run(cmd)
    m = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation=attn)
    m.eval()
    return m


def torch_perplexity(model, ids, window):
    n = len(ids) // window
    x = torch.tensor(ids[: n * window]).view(n, window)
    with torch.inference_mode():
        model(input_ids=x[:1, :window])  # warm-up
        t0 = time.perf_counter()
        total = 0.0
        for w in range(n):
            logits = model(input_ids=x[w : w + 1]).logits[0]
            total += F.cross_entropy(logits[:-1].double(), x[w, 1:], reduction="sum").item()
        seconds = time.perf_counter() - t0
    return {"nll": total / (n * (window - 1)), "tokens_per_s": n * window / seconds}


def ropescale_perplexity(args, ids_file, window, n_tokens, method, threads):
    out = run([args.ropescale, "eval", "ppl", "--model", args.model, "--ids", ids_file, "--ctx", str(window), "--tokens",
               str(n_tokens), "--methods", method, "--threads", str(threads), "--json", "-", "--quiet"])
    r = json.loads(out)["results"][0]
    return {"nll": r["nll"], "tokens_per_s": r["windows"] * window / r["seconds"]}


def perplexity_suite(args, work, ids, results):
    ids_file = os.path.join(work, "ids.txt")
    with open(ids_file, "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    for window in args.windows:
        factor = window / args.trained
        rope = None if factor <= 1 else {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": args.trained}
        method = "none" if rope is None else f"yarn:{factor:g}"
        n_tokens = max(2, args.tokens // window) * window
        models = {f"torch {a}": hf_model(args, work, rope, a) for a in args.attention}
        for threads in args.threads:
            torch.set_num_threads(threads)
            runs = {k: [] for k in list(models) + ["ropescale"]}
            for rep in range(args.repeats):
                log(f"  perplexity window {window} ({method}) threads {threads}, repeat {rep + 1}/{args.repeats}")
                for k, m in models.items():
                    runs[k].append(torch_perplexity(m, ids[:n_tokens], window))
                time.sleep(0.5)  # let PyTorch's worker threads stop spinning before ropescale starts
                runs["ropescale"].append(ropescale_perplexity(args, ids_file, window, n_tokens, method, threads))
            row = {"work": "perplexity", "window": window, "method": method, "threads": threads, "tokens": n_tokens}
            for k, v in runs.items():
                row[k] = {"tokens_per_s": statistics.median(x["tokens_per_s"] for x in v), "nll": v[0]["nll"]}
            results.append(row)
            report(row)


def torch_training(args, work, ids, threads, compiled):
    torch.manual_seed(1)
    model = hf_model(args, work, None, "sdpa")
    model.train()
    for p in model.parameters():  # a fresh start, as `ropescale train` makes
        torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else torch.nn.init.ones_(p)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    step_fn = model
    if compiled:
        step_fn = torch.compile(model)
    b, n = args.batch, args.trained
    gen = torch.Generator().manual_seed(2)
    data = torch.tensor(ids)

    def step():
        starts = torch.randint(0, len(ids) - n - 1, (b,), generator=gen)
        x = torch.stack([data[s : s + n] for s in starts.tolist()])
        loss = step_fn(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    torch.set_num_threads(threads)
    for _ in range(args.warmup_steps):  # compilation happens here
        step()
    t0 = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    return b * n * args.train_steps / (time.perf_counter() - t0)


def ropescale_training(args, work, threads):
    out = os.path.join(work, "train.gguf")
    csv_path = os.path.join(work, "train.csv")
    steps = args.warmup_steps + args.train_steps + 1
    run([args.ropescale, "train", "--text", args.train_text, "--out", out, "--ctx", str(args.trained), "--batch",
         str(args.batch), "--steps", str(steps), "--warmup", "0", "--threads", str(threads), "--eval-every", "0",
         "--log", csv_path, "--log-every", "1", "--passkey", "0", "--key-value", "0"])
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    a = rows[args.warmup_steps - 1]
    z = rows[args.warmup_steps + args.train_steps - 1]  # before the final step's validation
    return args.batch * args.trained * (int(z["step"]) - int(a["step"])) / (float(z["elapsed_s"]) - float(a["elapsed_s"]))


def training_suite(args, work, ids, results):
    kinds = ["torch eager"] + (["torch.compile"] if args.compile else [])
    for threads in args.threads:
        runs = {k: [] for k in kinds + ["ropescale"]}
        for rep in range(args.repeats):
            log(f"  training threads {threads}, repeat {rep + 1}/{args.repeats}")
            for k in kinds:
                runs[k].append(torch_training(args, work, ids, threads, k == "torch.compile"))
            time.sleep(0.5)
            runs["ropescale"].append(ropescale_training(args, work, threads))
        row = {"work": "training", "window": args.trained, "method": "", "threads": threads}
        for k, v in runs.items():
            row[k] = {"tokens_per_s": statistics.median(v)}
        results.append(row)
        report(row)


def report(row):
    ours = row["ropescale"]["tokens_per_s"]
    parts = []
    for k, v in row.items():
        if isinstance(v, dict) and k != "ropescale":
            parts.append(f"{k} {v['tokens_per_s']:7.0f} tok/s (ratio {ours / v['tokens_per_s']:.2f})")
    agree = ""
    if "nll" in row["ropescale"]:
        worst = max(abs(v["nll"] - row["ropescale"]["nll"]) for k, v in row.items() if isinstance(v, dict))
        agree = f"  NLL {row['ropescale']['nll']:.6f}, largest difference {worst:.1e} {'(agree)' if worst < 1e-4 else '(DIFFER)'}"
    print(f"{row['work']:<10} {row['window']:>5} {row['method']:<7} {row['threads']}t  ropescale {ours:7.0f} tok/s  "
          + "; ".join(parts) + agree, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ropescale", default="build/ropescale")
    ap.add_argument("--model", default="models/ropescale-kjv-256.gguf")
    ap.add_argument("--text", default="build/data/kjv_heldout.txt", help="perplexity text")
    ap.add_argument("--train-text", default="build/data/kjv.txt")
    ap.add_argument("--trained", type=int, default=256, help="the model's trained length")
    ap.add_argument("--windows", default="256,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--attention", default="sdpa,eager", help="transformers attention implementations")
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--warmup-steps", type=int, default=3)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", help="write every measurement to FILE")
    args = ap.parse_args()
    args.windows = [int(x) for x in args.windows.split(",")]
    args.threads = [int(x) for x in args.threads.split(",")]
    args.attention = [a for a in args.attention.split(",") if a]
    print(f"ropescale vs PyTorch {torch.__version__} + transformers; ratio = ropescale tokens/s ÷ PyTorch tokens/s, "
          f"median of {args.repeats} interleaved runs, float32", flush=True)
    ids = [int(x) for x in run([args.ropescale, "tokenize", "--model", args.model, "--text", args.text]).split()]
    results = []
    with tempfile.TemporaryDirectory(prefix="ropescale-torch-") as work:
        if not args.skip_ppl:
            perplexity_suite(args, work, ids, results)
        if not args.skip_train:
            training_suite(args, work, ids, results)  # the text read does not change the speed
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "repeats": args.repeats, "results": results}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
