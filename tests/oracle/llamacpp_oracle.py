"""llama.cpp itself (llama-cpp-python) as the oracle for GGUF files ropescale
writes: stories260K converted with no / linear / YaRN scaling is loaded by
llama.cpp, which takes the rope setting from the file's own metadata, and its
logits are compared with ropescale's on the same token ids.

Usage: llamacpp_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import os
import random
import subprocess
import sys
import tempfile

from oracle_support import convert, random_ids, report, ropescale_logits, stories260k

try:
    import numpy as np
    import llama_cpp
except Exception as e:  # pragma: no cover
    print(f"SKIPPED LOUDLY: the llama.cpp oracle needs llama-cpp-python ({e})", flush=True)
    sys.exit(77)

LAST = 8
ABS_TOL = 1e-3  # the bar for logits


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    src = stories260k(model_dir)
    if not src:
        return 77
    rng = random.Random(11)
    cases = [("none @ 400", None, 400),
             ("linear x4 @ 1200", {"rope_type": "linear", "factor": 4.0}, 1200),
             ("yarn x4 @ 1200", {"rope_type": "yarn", "factor": 4.0}, 1200)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, rope, n in cases:
            path = os.path.join(tmp, label.split()[0] + ".gguf")
            convert(binary, src, path, rope, "--dtype", "f32")
            ids = random_ids(rng, n)
            llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_batch=2048, n_ubatch=2048, logits_all=True,
                                  n_threads=2, type_k=0, type_v=0, verbose=False)  # f32 KV cache
            llm.eval(ids)
            theirs = np.asarray(llm.scores[n - LAST:n], dtype=np.float64)
            ours = np.asarray(ropescale_logits(binary, path, ids, LAST), dtype=np.float64)
            worst = float(np.max(np.abs(ours - theirs)))
            failures += not report(label, worst, ABS_TOL, LAST, 20)
            del llm
    # The default model (byte-level vocabulary, written as GPT-2 byte-level BPE without merges):
    # llama.cpp must tokenize text exactly as ropescale does, then compute the same logits.
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "ropescale-kjv-256.gguf")
    texts = ["In the beginning God created the heaven and the earth.\n\tAnd the earth was without form;  void.",
             "Caf\u00e9 na\u00efve \u2581 1234 \U0001F600 end\r\n\"quoted\" (x) [y] {z} 3.14%"]
    cases_text = len(texts) + 1
    llm = llama_cpp.Llama(model_path=default, n_ctx=512, n_batch=512, n_ubatch=512, logits_all=True, n_threads=2,
                          type_k=0, type_v=0, verbose=False)
    for i, text in enumerate(texts):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8", newline="") as f:
            f.write(text)
        ours = [int(x) for x in subprocess.run([binary, "tokenize", "--model", default, "--text", f.name],
                                               check=True, capture_output=True, text=True).stdout.split()]
        os.unlink(f.name)
        theirs = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        ok = ours == theirs
        print(f"{'ok  ' if ok else 'FAIL'} default model token ids, text {i + 1}: {len(ours)} ids"
              + ("" if ok else f"\n  ropescale {ours[:24]}\n  llama.cpp {theirs[:24]}"), flush=True)
        failures += not ok
    ids = llm.tokenize(" ".join(texts * 3).encode("utf-8"), add_bos=True, special=False)
    llm.eval(ids)
    n = len(ids)
    theirs = np.asarray(llm.scores[n - LAST:n], dtype=np.float64)
    ours = np.asarray(ropescale_logits(binary, default, ids, LAST), dtype=np.float64)
    failures += not report(f"default model logits @ {n}", float(np.max(np.abs(ours - theirs))), ABS_TOL, LAST, 20)
    del llm
    cases = cases + [None] * cases_text
    print(f"llama.cpp oracle: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
