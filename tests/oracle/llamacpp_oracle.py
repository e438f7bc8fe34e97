"""llama.cpp itself (llama-cpp-python) as the oracle for every kind of GGUF
ropescale writes: stories260K converted (SentencePiece vocabulary) with each
scaling ropescale can write for llama.cpp, the default model (byte-level
vocabulary) as shipped and converted with YaRN, and YaRN ×8 checkpoints from a
short `ropescale finetune` of each.

For each file, with no command-line rope flags (llama.cpp takes the setting
from the file's own metadata):
- llama.cpp tokenizes real text (KJV, TinyStories, punctuation/digits/newlines/
  non-ASCII) into exactly ropescale's ids;
- its mean next-token NLL on real text at 1× and 8× the trained context equals
  ropescale's within 1e-4 nats, and every logit of every position within 1e-2.

Usage: llamacpp_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import json
import os
import subprocess
import sys
import tempfile

from oracle_support import (compare_ids, convert, finetune_yarn, mean_nll, real_texts, ropescale_ids, ropescale_logits,
                            shared_root, stories260k)

try:
    import numpy as np
    import llama_cpp
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the llama.cpp oracle needs llama-cpp-python ({e})", flush=True)
    sys.exit(77)

NLL_TOL = 1e-4    # the bar (nats, mean over the sequence); measured ≤ 4e-6
# Every logit of every position: f32 forward passes in different orders, and ggml's rotary angles are
# single precision (its cos/sin cache multiplies θ by θ_scale pair after pair in float), which at
# 4096 tokens drifts ~1e-3 rad; measured ≤ 2e-4 at 1× and ≤ 4e-3 at 8×.
LOGIT_TOL = 1e-2
LONG_FACTOR = [1.0, 2.0, 4.0, 8.0]
STORIES_SCALINGS = [
    ("linear x8", {"rope_type": "linear", "factor": 8.0}),
    ("ntk x8", {"rope_type": "ntk", "factor": 8.0}),
    ("yarn x8", {"rope_type": "yarn", "factor": 8.0}),
    ("yarn x8 attention_factor 1", {"rope_type": "yarn", "factor": 8.0, "attention_factor": 1.0}),
    ("llama3 x8", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}),
    ("longrope x8", {"rope_type": "longrope", "factor": 8.0, "short_factor": [1.0, 1.1, 1.5, 2.0], "long_factor": LONG_FACTOR}),
]


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def add(self, ok):
        self.passed += bool(ok)
        self.failed += not ok


def check_ids(tally, label, binary, path, texts, tmp):
    vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    for name, text in texts.items():
        ours = ropescale_ids(binary, path, text, tmp)
        tally.add(compare_ids(f"{label}: token ids, {name}", ours, vocab.tokenize(text.encode("utf-8"), add_bos=True,
                                                                                    special=False), "llama.cpp"))
    del vocab


def llama_cpp_logits(path, ids):
    n = len(ids)
    llm = llama_cpp.Llama(model_path=path, n_ctx=n, n_batch=n, n_ubatch=n, logits_all=True, n_threads=2,
                          type_k=0, type_v=0, verbose=False)  # f32 KV cache
    llm.eval(ids)
    out = np.asarray(llm.scores[:n], dtype=np.float64)
    del llm
    return out


def check_nll(tally, label, binary, path, ids, rope_for_ours=None):
    theirs = llama_cpp_logits(path, ids)
    ours = np.asarray(ropescale_logits(binary, path, ids, len(ids), rope_for_ours), dtype=np.float64)
    a, b = mean_nll(ours, ids), mean_nll(theirs, ids)
    worst = float(np.max(np.abs(ours - theirs)))
    ok = abs(a - b) <= NLL_TOL and worst <= LOGIT_TOL
    print(f"{'ok  ' if ok else 'FAIL'} {label} @ {len(ids)}: NLL ropescale {a:.6f} llama.cpp {b:.6f} "
          f"(|diff| {abs(a - b):.1e}), max |logit diff| {worst:.1e}", flush=True)
    tally.add(ok)


def keys_rotation(binary, path, n):
    """inv_freq and attention factor at n tokens as llama.cpp's keys alone describe them."""
    r = subprocess.run([binary, "--gguf-rope", "llama.cpp", "freqs", "--json", "--config", path, "--seq-len", str(n)],
                       check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    return j["inv_freq"] + [j["attention_factor"]]


def check_scaling_in_keys(tally, label, binary, path, plain, n):
    """The file's llama.cpp keys carry the scaling: at n tokens they rotate unlike plain RoPE (so agreeing
    at 8x is not both engines running plain RoPE)."""
    ok = keys_rotation(binary, path, n) != keys_rotation(binary, plain, n)
    print(f"{'ok  ' if ok else 'FAIL'} {label}: llama.cpp's keys " + ("carry the scaling" if ok else "say plain RoPE"), flush=True)
    tally.add(ok)


def long_factors_everywhere(rope):
    """A longrope dict with its long factors (and the long regime's attention factor) as the short ones
    too: how llama.cpp runs it at every length."""
    everywhere = {**rope, "short_factor": rope["long_factor"]}
    if "long_mscale" in rope:
        everywhere["short_mscale"] = rope["long_mscale"]
    return everywhere


def check_file(tally, label, binary, path, texts, nll_ids, trained, tmp, plain, long_only=None):
    """long_only: a longrope dict (llama.cpp applies its long factors at every length), else None."""
    check_scaling_in_keys(tally, label, binary, path, plain, 8 * trained)
    check_ids(tally, label, binary, path, texts, tmp)
    for mult in (1, 8):
        n = trained * mult
        if len(nll_ids) < n:
            raise SystemExit(f"the NLL text has {len(nll_ids)} tokens, {n} are needed")
        if mult == 1 and long_only:
            # llama.cpp's llama architecture has no short/long switch: below the trained length it keeps
            # the long factors where ropescale (like HF) uses the short ones. Check that this is the only
            # difference: ropescale with the long factors at every length gives llama.cpp's numbers.
            check_nll(tally, label + " (1x: long factors, as llama.cpp runs it)", binary, path, nll_ids[:n],
                      long_factors_everywhere(long_only))
            continue
        check_nll(tally, label, binary, path, nll_ids[:n])


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    src = stories260k(model_dir)
    if not src:
        return 77
    texts = real_texts(model_dir)
    data = os.path.join(shared_root(model_dir), "data")
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "ropescale-kjv-256.gguf")
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        # stories260K (trained 512, SentencePiece vocabulary): NLL on TinyStories.
        plain = os.path.join(tmp, "stories.gguf")
        convert(binary, src, plain, None, "--dtype", "f32")
        with open(os.path.join(data, "tinystories_valid_head.txt"), encoding="utf-8") as f:
            stories_ids = ropescale_ids(binary, plain, f.read()[:12000], tmp)
        check_ids(tally, "stories260K", binary, plain, texts, tmp)
        check_nll(tally, "stories260K", binary, plain, stories_ids[:512])
        for label, rope in STORIES_SCALINGS:
            path = os.path.join(tmp, "stories-" + label.replace(" ", "-") + ".gguf")
            convert(binary, src, path, rope, "--dtype", "f32")
            check_file(tally, "stories260K " + label, binary, path, texts, stories_ids, 512, tmp, plain,
                       long_only=rope if rope["rope_type"] == "longrope" else None)
        tuned = os.path.join(tmp, "stories-finetuned.gguf")
        finetune_yarn(binary, src, os.path.join(data, "tinystories_valid_head.txt"), tuned, 1024)
        check_file(tally, "stories260K finetuned yarn x8", binary, tuned, texts, stories_ids, 512, tmp, plain)

        # The default model (trained 256, byte-level vocabulary): NLL on KJV.
        with open(os.path.join(data, "kjv_genesis.txt"), encoding="utf-8") as f:
            kjv_ids = ropescale_ids(binary, default, f.read()[30000:33000], tmp)
        check_ids(tally, "default model", binary, default, texts, tmp)
        check_nll(tally, "default model", binary, default, kjv_ids[:256])
        yarn = os.path.join(tmp, "default-yarn.gguf")
        convert(binary, default, yarn, {"rope_type": "yarn", "factor": 8.0})
        check_file(tally, "default model yarn x8", binary, yarn, texts, kjv_ids, 256, tmp, default)
        # A LongRoPE calibration (a short search) written as a GGUF by calibrate --out-gguf.
        calibrated, calibration = os.path.join(tmp, "default-longrope.gguf"), os.path.join(tmp, "longrope.json")
        subprocess.run([binary, "calibrate", "--method", "longrope", "--model", default, "--text",
                        os.path.join(data, "kjv_genesis.txt"), "--target-context", "2048", "--windows", "1",
                        "--population", "6", "--iterations", "1", "--mutations", "3", "--crossovers", "3", "--parents", "3",
                        "--short-iterations", "1", "--out", calibration, "--out-gguf", calibrated],
                       check=True, capture_output=True)
        with open(calibration, encoding="utf-8") as f:
            rope = json.load(f)["rope_scaling"]
        check_file(tally, "default model longrope-calibrated x8", binary, calibrated, texts, kjv_ids, 256, tmp, default,
                   long_only=rope)
        tuned = os.path.join(tmp, "default-finetuned.gguf")
        finetune_yarn(binary, default, os.path.join(data, "kjv_genesis.txt"), tuned, 1024)
        check_file(tally, "default model finetuned yarn x8", binary, tuned, texts, kjv_ids, 256, tmp, default)
    print(f"llama.cpp oracle: {tally.passed} passed, {tally.failed} failed", flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
