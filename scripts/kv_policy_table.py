#!/usr/bin/env python3
"""Markdown table from one `ropescale eval suite --kv-policy … --json` run: one row per (method, KV
policy) pair — the method labels read "method · policy" — with perplexity at every context length,
passkey retrieval (exact of trials) at every length, and the KV-cache MiB the policy's sessions
allocate at the longest context (the report's kv_memory rows).
Usage: kv_policy_table.py SUITE.json"""
import json
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = json.load(open(sys.argv[1]))
    ctxs = sorted({r["ctx"] for r in run["results"]})
    lengths = sorted({c["length"] for c in run["passkey"]["cells"]})
    memory = {(m["policy"], m["tokens"]): m["bytes"] for m in run["kv_memory"]}
    head = ["policy", "method"] + [f"ppl@{c}" for c in ctxs] + [f"passkey@{n}" for n in lengths] + [f"KV MiB@{ctxs[-1]}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in run["methods"]:
        label = m["method"]
        method, policy = label.split(" · ", 1) if " · " in label else (label, run["protocol"]["kv_policies"][0])
        ppl = {r["ctx"]: r["ppl"] for r in run["results"] if r["method"] == label}
        cells = [c for c in run["passkey"]["cells"] if c["method"] == label]
        keys = []
        for n in lengths:
            mine = [c for c in cells if c["length"] == n]
            keys.append(f"{sum(c['exact'] for c in mine)}/{sum(c['trials'] for c in mine)}")
        mib = memory[(policy, ctxs[-1])] / 1048576
        print("| " + " | ".join([policy, method] + [f"{ppl[c]:.3f}" for c in ctxs] + keys + [f"{mib:.2f}"]) + " |")


if __name__ == "__main__":
    main()
