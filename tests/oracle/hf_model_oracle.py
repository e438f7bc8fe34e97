"""Hugging Face transformers as the oracle for ropescale's forward pass.

stories260K is converted to the HF layout (`ropescale convert --to safetensors`,
Q/K rows permuted for rotate_half), loaded by transformers' LlamaForCausalLM,
and both compute the logits of the same token ids — for plain RoPE and for
every scaling method HF has, past the trained 512 tokens where they differ.

Then every kind of model file ropescale writes — stories260K (SentencePiece
vocabulary), the default model (byte-level), each with YaRN ×8 and as a short
`ropescale finetune` checkpoint — exported with its tokenizer.json: transformers'
AutoTokenizer gives ropescale's ids on real text (KJV, TinyStories, punctuation/
digits/newlines/non-ASCII) and decodes them back, and the mean NLL on real text
agrees within 1e-4 nats at 1× and 8× the trained context.

Usage: hf_model_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import os
import random
import subprocess
import sys
import tempfile

from oracle_support import (compare_ids, convert, finetune_yarn, mean_nll, random_ids, real_texts, report, ropescale_ids,
                            ropescale_logits, shared_root, stories260k)

try:
    import torch
    from transformers import LlamaForCausalLM
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the model oracle needs torch + transformers ({e})", flush=True)
    sys.exit(77)

LAST = 8          # positions compared at the end of each sequence
ABS_TOL = 2e-3    # float32 forward passes, different summation orders; logits are O(10)
NLL_TOL = 1e-4    # mean next-token NLL on real text (nats)


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
        # Every kind of model file ropescale writes, exported (`convert --to safetensors`) with its
        # tokenizer.json: transformers must give ropescale's ids on real text, and the same mean NLL
        # (within 1e-4 nats) at 1x and 8x the trained context, the scaling read from config.json.
        from transformers import AutoTokenizer
        texts = real_texts(model_dir)
        data = os.path.join(shared_root(model_dir), "data")
        default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "ropescale-kjv-256.gguf")
        default_tuned = os.path.join(tmp, "default-finetuned.gguf")
        finetune_yarn(binary, default, os.path.join(data, "kjv_genesis.txt"), default_tuned, 1024)
        stories_tuned = os.path.join(tmp, "stories-finetuned.gguf")
        finetune_yarn(binary, src, os.path.join(data, "tinystories_valid_head.txt"), stories_tuned, 1024)
        with open(os.path.join(data, "kjv_genesis.txt"), encoding="utf-8") as f:
            kjv = f.read()[30000:33000]
        with open(os.path.join(data, "tinystories_valid_head.txt"), encoding="utf-8") as f:
            stories = f.read()[:12000]
        files = [("stories260K", src, None, 512, stories),
                 ("stories260K yarn x8", src, {"rope_type": "yarn", "factor": 8.0}, 512, stories),
                 ("stories260K finetuned yarn x8", stories_tuned, None, 512, stories),
                 ("default model", default, None, 256, kjv),
                 ("default model yarn x8", default, {"rope_type": "yarn", "factor": 8.0}, 256, kjv),
                 ("default model finetuned yarn x8", default_tuned, None, 256, kjv)]
        for label, model, rope, trained, nll_text in files:
            out = os.path.join(tmp, label.replace(" ", "-"))
            convert(binary, model, out, rope, "--to", "safetensors")
            tok = AutoTokenizer.from_pretrained(out)
            for name, text in texts.items():
                ours = ropescale_ids(binary, out, text, tmp)
                theirs = tok(text)["input_ids"]
                ok = compare_ids(f"{label}: token ids (transformers tokenizer.json), {name}", ours, theirs, "transformers")
                # Decoding gives the text back (a SentencePiece vocabulary reads U+2581 as a space, so not that one).
                if ok and "\u2581" not in text and tok.decode(theirs[1:]) != text:
                    print(f"FAIL {label}: transformers decodes {name} to different text", flush=True)
                    ok = False
                failures += not ok
                cases.append(None)
            ids = ropescale_ids(binary, out, nll_text, tmp)
            model_hf = LlamaForCausalLM.from_pretrained(out, torch_dtype=torch.float32, attn_implementation="eager")
            model_hf.eval()
            for n in (trained, 8 * trained) if rope or "finetuned" in label else (trained,):
                seq = ids[:n]
                with torch.no_grad():
                    hf = model_hf(torch.tensor([seq])).logits[0].double().numpy()
                a, b = mean_nll(ropescale_logits(binary, out, seq, n), seq), mean_nll(hf, seq)
                ok = abs(a - b) <= NLL_TOL
                print(f"{'ok  ' if ok else 'FAIL'} {label} @ {n}: NLL ropescale {a:.6f} transformers {b:.6f} "
                      f"(|diff| {abs(a - b):.1e})", flush=True)
                failures += not ok
                cases.append(None)
    print(f"HF model oracle: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
