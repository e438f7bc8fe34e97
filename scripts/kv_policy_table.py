#!/usr/bin/env python3
"""Markdown table from `ropescale eval suite --json` runs that differ in their KV / position policy:
one row per (policy, method) with perplexity at every context length, passkey retrieval (exact of
trials) at every length, and the KV-cache bytes at the longest length — from `ropescale plan --json`
at that length (full caches) and at sinks + window (windowed ones).
Usage: kv_policy_table.py PLAN_LONG.json PLAN_WINDOW.json RUN.json=LABEL [RUN.json=LABEL …]"""
import json
import sys


def kv_bytes(plans, protocol):
    dtype = {"f16": "f16/bf16"}.get(protocol["kv_cache"], protocol["kv_cache"])
    plan = plans["window"] if protocol.get("kv_window") else plans["long"]
    row = next(r for r in plan["kv_cache"] if r["dtype"] == dtype)
    return row["bytes"]


def main():
    if len(sys.argv) < 4 or any("=" not in a for a in sys.argv[3:]):
        sys.exit(__doc__)
    plans = {"long": json.load(open(sys.argv[1])), "window": json.load(open(sys.argv[2]))}
    runs = [(a.split("=", 1)[1], json.load(open(a.split("=", 1)[0]))) for a in sys.argv[3:]]
    ctxs = sorted({r["ctx"] for r in runs[0][1]["results"]})
    lengths = sorted({c["length"] for c in runs[0][1]["passkey"]["cells"]})
    head = ["policy", "method"] + [f"ppl@{c}" for c in ctxs] + [f"passkey@{n}" for n in lengths] + [f"KV MiB@{ctxs[-1]}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, run in runs:
        mib = kv_bytes(plans, run["protocol"]) / 1048576
        for m in run["methods"]:
            name = m["method"]
            ppl = {r["ctx"]: r["ppl"] for r in run["results"] if r["method"] == name}
            cells = [c for c in run["passkey"]["cells"] if c["method"] == name]
            keys = []
            for n in lengths:
                mine = [c for c in cells if c["length"] == n]
                keys.append(f"{sum(c['exact'] for c in mine)}/{sum(c['trials'] for c in mine)}")
            print("| " + " | ".join([label, name] + [f"{ppl[c]:.3f}" for c in ctxs] + keys + [f"{mib:.2f}"]) + " |")


if __name__ == "__main__":
    main()
