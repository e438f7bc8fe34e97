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


def ropescale_logits(binary, model, ids, last, rope=None):
    """ropescale's logits of the last `last` positions, as lists of floats (`rope`: a --rope-scaling override)."""
    cmd = [binary, "logits", "--model", model, "--ids", " ".join(map(str, ids)), "--last", str(last)]
    if rope:
        cmd += ["--rope-scaling", json.dumps(rope)]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(r.stdout)["logits"]


def report(label, worst, tol, last, width):
    """Prints one case's verdict; True when it passes."""
    ok = worst <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {label:<{width}} max |logit diff| over last {last} positions = {worst:.2e}", flush=True)
    return ok


# ---- real text, token ids and NLL: what every engine must agree on (issue 20) ----

SPECIAL_TEXT = ("Caf\u00e9 na\u00efve \u00e9\u00e8\u00ea \u4e2d\u6587 \U0001F600 \u2581spaced\u2581 end\r\n"
                "\"quoted\" (x) [y] {z} 3.14% 1,234,567 -- 0x1F\t tab  two  spaces\n\n  lead </s> <0x0A> ~!@#$^&*_+=|\\/?<>\n")


def shared_root(model_dir):
    """../shared, from the stories260K directory the oracles are given."""
    return os.path.dirname(os.path.dirname(os.path.abspath(model_dir)))


def real_texts(model_dir):
    """A few thousand characters each of KJV and TinyStories, and text with punctuation, digits,
    newlines and non-ASCII (U+2581 included)."""
    data = os.path.join(shared_root(model_dir), "data")
    with open(os.path.join(data, "kjv_genesis.txt"), encoding="utf-8") as f:
        kjv = f.read()
    with open(os.path.join(data, "tinystories_valid_head.txt"), encoding="utf-8") as f:
        stories = f.read()
    return {"KJV": kjv[20000:24000], "TinyStories": stories[:4000], "special": SPECIAL_TEXT}


def ropescale_ids(binary, model, text, tmp):
    """`ropescale tokenize` of `text` (BOS first)."""
    path = os.path.join(tmp, "text.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    r = subprocess.run([binary, "tokenize", "--model", model, "--text", path], check=True, capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def log_softmax(rows):
    """Log-probabilities of each row of logits, in float64."""
    import numpy as np
    z = np.asarray(rows, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))


def mean_nll(logits, ids):
    """Mean next-token negative log-likelihood (nats) of ids[1:] given logits of every position (float64)."""
    import numpy as np
    lp = log_softmax(logits)[:-1]
    return float(-np.mean(lp[np.arange(len(lp)), np.asarray(ids[1:])]))


def finetune_yarn(binary, model, text, out, ctx):
    """A short YaRN ×8 fine-tune (3 steps at `ctx` tokens): a checkpoint as `ropescale finetune` writes it."""
    subprocess.run([binary, "finetune", "--model", model, "--rope-scaling", '{"rope_type":"yarn","factor":8}', "--text", text,
                    "--ctx", str(ctx), "--steps", "3", "--batch", "1", "--eval-every", "3", "--valid", "2", "--out", out,
                    "--threads", "2"], check=True, capture_output=True)


def compare_ids(label, ours, theirs, engine):
    """Prints whether two id lists agree (and where they part); True when they do."""
    ok = ours == theirs
    where = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    print(f"{'ok  ' if ok else 'FAIL'} {label}: {len(ours)} ids" +
          ("" if ok else f" vs {len(theirs)}; first difference at {where}: ropescale {ours[where:where + 6]}, "
                         f"{engine} {theirs[where:where + 6]}"), flush=True)
    return ok


class Checks:
    """Named pass/fail checks, printed as they run; the oracle exits 1 when any failed."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f" — {detail}" if detail else ""), flush=True)
        self.passed += bool(ok)
        self.failed += not ok
        return ok
