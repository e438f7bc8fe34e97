"""Hugging Face transformers as the oracle for ropescale's forward pass.

stories260K is converted to the HF layout (`ropescale convert --to safetensors`,
Q/K rows permuted for rotate_half), loaded by transformers' LlamaForCausalLM,
and both compute the logits of the same token ids — for plain RoPE and for
every scaling method HF has, past the trained 512 tokens where they differ.

Usage: hf_model_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import os
import random
import subprocess
import sys
import tempfile

from oracle_support import convert, random_ids, report, ropescale_logits, stories260k

try:
    import torch
    from transformers import LlamaForCausalLM
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the model oracle needs torch + transformers ({e})", flush=True)
    sys.exit(77)

LAST = 8          # positions compared at the end of each sequence
ABS_TOL = 2e-3    # float32 forward passes, different summation orders; logits are O(10)


def worst_logit_difference(binary, hf_dir, ids):
    """Largest |logit difference| of transformers (eager, f32) and ropescale over the last LAST positions."""
    model = LlamaForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0, -LAST:].numpy()
    ours = ropescale_logits(binary, hf_dir, ids, LAST)
    return max(abs(a - b) for row_a, row_b in zip(ours, hf.tolist()) for a, b in zip(row_a, row_b))


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    src = stories260k(model_dir)
    if not src:
        return 77
    torch.set_num_threads(2)
    rng = random.Random(5)
    cases = [
        ("default @ 300 tokens", None, 300),
        ("linear x4 @ 1200", {"rope_type": "linear", "factor": 4.0}, 1200),
        ("dynamic x4 @ 1200", {"rope_type": "dynamic", "factor": 4.0}, 1200),
        ("yarn x4 @ 1200", {"rope_type": "yarn", "factor": 4.0}, 1200),
        ("yarn x8 attention_factor 1.0 @ 1500", {"rope_type": "yarn", "factor": 8.0, "attention_factor": 1.0}, 1500),
        ("llama3 x8 @ 1200", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}, 1200),
        ("longrope @ 1200 (long factors)", {"rope_type": "longrope", "factor": 4.0, "short_factor": [1.0, 1.1, 1.5, 2.0],
                                            "long_factor": [1.0, 2.0, 4.0, 8.0]}, 1200),
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, rope, n in cases:
            out = os.path.join(tmp, label.split()[0] + str(n))
            convert(binary, src, out, rope, "--to", "safetensors")
            ids = random_ids(rng, n)
            failures += not report(label, worst_logit_difference(binary, out, ids), ABS_TOL, LAST, 40)
        # The default model (byte-level vocabulary): transformers loads its tokenizer.json and must give
        # ropescale's ids on real text, then the same logits.
        from transformers import AutoTokenizer
        default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "ropescale-kjv-256.gguf")
        out = os.path.join(tmp, "default")
        convert(binary, default, out, None, "--to", "safetensors")
        tok = AutoTokenizer.from_pretrained(out)
        texts = ["In the beginning God created the heaven and the earth.\n\tAnd the earth was without form;  void.",
                 "Caf\u00e9 na\u00efve \u2581 1234 \U0001F600 end\r\n\"quoted\" (x) [y] {z} 3.14%"]
        for i, text in enumerate(texts):
            path = os.path.join(tmp, f"text{i}.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            ours = [int(x) for x in subprocess.run([binary, "tokenize", "--model", out, "--text", path], check=True,
                                                   capture_output=True, text=True).stdout.split()]
            theirs = tok(text)["input_ids"]
            ok = ours == theirs and tok.decode(theirs[1:]) == text
            print(f"{'ok  ' if ok else 'FAIL'} default model token ids (transformers tokenizer.json), text {i + 1}: "
                  f"{len(ours)} ids" + ("" if ok else f"\n  ropescale {ours[:24]}\n  transformers {theirs[:24]}"), flush=True)
            failures += not ok
            cases.append(None)
        ids = tok(" ".join(texts * 2))["input_ids"]
        failures += not report(f"default model @ {len(ids)}", worst_logit_difference(binary, out, ids), ABS_TOL, LAST, 40)
        cases.append(None)
    print(f"HF model oracle: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
