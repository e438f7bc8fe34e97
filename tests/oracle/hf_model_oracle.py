"""Hugging Face transformers as the oracle for ropescale's forward pass.

stories260K is converted to the HF layout (`ropescale convert --to safetensors`,
Q/K rows permuted for rotate_half), loaded by transformers' LlamaForCausalLM,
and both compute the logits of the same token ids — for plain RoPE and for
every scaling method HF has, past the trained 512 tokens where they differ.

Usage: hf_model_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import torch
    from transformers import LlamaForCausalLM
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the model oracle needs torch + transformers ({e})", flush=True)
    sys.exit(77)

LAST = 8          # positions compared at the end of each sequence
ABS_TOL = 2e-3    # float32 forward passes, different summation orders; logits are O(10)


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    src = os.path.join(model_dir, "stories260K.bin")
    if not os.path.exists(src):
        print(f"SKIPPED LOUDLY: {src} is absent", flush=True)
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
            cmd = [binary, "convert", "--model", src, "--to", "safetensors", "--out", out]
            if rope:
                cmd += ["--rope-scaling", json.dumps(rope)]
            subprocess.run(cmd, check=True, capture_output=True)
            ids = [1] + [rng.randrange(3, 512) for _ in range(n - 1)]
            model = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32, attn_implementation="eager")
            model.eval()
            with torch.no_grad():
                hf = model(torch.tensor([ids])).logits[0, -LAST:].numpy()
            r = subprocess.run([binary, "logits", "--model", out, "--ids", " ".join(map(str, ids)), "--last", str(LAST)],
                               check=True, capture_output=True, text=True)
            ours = json.loads(r.stdout)["logits"]
            worst = max(abs(a - b) for row_a, row_b in zip(ours, hf.tolist()) for a, b in zip(row_a, row_b))
            ok = worst <= ABS_TOL
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {label:<40} max |logit diff| over last {LAST} positions = {worst:.2e}", flush=True)
    print(f"HF model oracle: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
