#!/usr/bin/env python3
"""Markdown table from `ropescale eval suite --json` runs of a base model and of
fine-tuned ones: perplexity at the short and the long context, the short-context
change against the base model's plain RoPE, and passkey retrieval at the long
length. Usage: compare_table.py BASE.json FINETUNED.json=LABEL [FINETUNED.json=LABEL …]"""
import json
import sys


def rows(path, tag):
    run = json.load(open(path))
    ctxs = sorted({r["ctx"] for r in run["results"]})
    short, long_ = ctxs[0], ctxs[-1]
    cells = run.get("passkey", {}).get("cells", [])
    out = []
    for m in run["methods"]:
        name = m["method"]
        if tag and name == "none":
            continue  # the fine-tuned weights with plain RoPE: not part of the comparison
        ppl = {r["ctx"]: r["ppl"] for r in run["results"] if r["method"] == name}
        mine = [c for c in cells if c["method"] == name and c["length"] == long_]
        exact = sum(c["exact"] for c in mine)
        trials = sum(c["trials"] for c in mine)
        score = sum(c["rank_score"] * c["trials"] for c in mine) / max(1, trials)
        out.append((f"{name}{tag}", ppl.get(short), ppl.get(long_), exact, trials, score))
    return short, long_, out


def main():
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    short, long_, base = rows(sys.argv[1], "")
    ft = []
    for arg in sys.argv[2:]:
        path, label = arg.split("=", 1)
        ft += rows(path, f" ({label})")[2]
    ref = next(r[1] for r in base if r[0] == "none")
    print(f"| method | ppl @ {short} (1×) | change vs none @ {short} | ppl @ {long_} (8×) | passkey exact @ {long_} | rank score @ {long_} |")
    print("|---|---|---|---|---|---|")
    for name, p_short, p_long, exact, trials, score in base + ft:
        change = (p_short / ref - 1) * 100
        print(f"| {name} | {p_short:.3f} | {change:+.1f} % | {p_long:.3f} | {exact}/{trials} | {score:.2f} |")


if __name__ == "__main__":
    main()
