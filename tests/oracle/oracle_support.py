"""What the model oracles share: finding stories260K, running `ropescale
convert` and `ropescale logits`, and reporting one comparison."""
import json
import os
import subprocess


def stories260k(model_dir):
    """The checkpoint's path, or None after saying the oracle skips (exit 77)."""
    src = os.path.join(model_dir, "stories260K.bin")
    if not os.path.exists(src):
        print(f"SKIPPED LOUDLY: {src} is absent", flush=True)
        return None
    return src


def convert(binary, src, out, rope=None, *args):
    """`ropescale convert --model src --out out [args] [--rope-scaling rope]`; rope is a dict or JSON text."""
    cmd = [binary, "convert", "--model", src, "--out", out, *args]
    if rope:
        cmd += ["--rope-scaling", rope if isinstance(rope, str) else json.dumps(rope)]
    subprocess.run(cmd, check=True, capture_output=True)


def random_ids(rng, n, vocab=512):
    """BOS, then n − 1 random ordinary tokens."""
    return [1] + [rng.randrange(3, vocab) for _ in range(n - 1)]


def ropescale_logits(binary, model, ids, last):
    """ropescale's logits of the last `last` positions, as lists of floats."""
    r = subprocess.run([binary, "logits", "--model", model, "--ids", " ".join(map(str, ids)), "--last", str(last)],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["logits"]


def report(label, worst, tol, last, width):
    """Prints one case's verdict; True when it passes."""
    ok = worst <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {label:<{width}} max |logit diff| over last {last} positions = {worst:.2e}", flush=True)
    return ok
