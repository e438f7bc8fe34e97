"""llama.cpp itself (llama-cpp-python) as the oracle for GGUF files ropescale
writes: stories260K converted with no / linear / YaRN scaling is loaded by
llama.cpp, which takes the rope setting from the file's own metadata, and its
logits are compared with ropescale's on the same token ids.

Usage: llamacpp_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

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
    src = os.path.join(model_dir, "stories260K.bin")
    if not os.path.exists(src):
        print(f"SKIPPED LOUDLY: {src} is absent", flush=True)
        return 77
    rng = random.Random(11)
    cases = [("none @ 400", None, 400),
             ("linear x4 @ 1200", {"rope_type": "linear", "factor": 4.0}, 1200),
             ("yarn x4 @ 1200", {"rope_type": "yarn", "factor": 4.0}, 1200)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, rope, n in cases:
            path = os.path.join(tmp, label.split()[0] + ".gguf")
            cmd = [binary, "convert", "--model", src, "--out", path, "--dtype", "f32"]
            if rope:
                cmd += ["--rope-scaling", json.dumps(rope)]
            subprocess.run(cmd, check=True, capture_output=True)
            ids = [1] + [rng.randrange(3, 512) for _ in range(n - 1)]
            llm = llama_cpp.Llama(model_path=path, n_ctx=2048, n_batch=2048, n_ubatch=2048, logits_all=True,
                                  n_threads=2, type_k=0, type_v=0, verbose=False)  # f32 KV cache
            llm.eval(ids)
            theirs = np.asarray(llm.scores[n - LAST:n], dtype=np.float64)
            r = subprocess.run([binary, "logits", "--model", path, "--ids", " ".join(map(str, ids)), "--last", str(LAST)],
                               check=True, capture_output=True, text=True)
            ours = np.asarray(json.loads(r.stdout)["logits"], dtype=np.float64)
            worst = float(np.max(np.abs(ours - theirs)))
            ok = worst <= ABS_TOL
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {label:<20} max |logit diff| over last {LAST} positions = {worst:.2e}", flush=True)
            del llm
    print(f"llama.cpp oracle: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
