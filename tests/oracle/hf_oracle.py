"""Hugging Face transformers as the oracle for ropescale's frequencies.

For every real config in configs/models/ (and a battery of rope settings laid
over two of them), compute (inv_freq, attention_factor) with transformers' own
rope functions and compare with `ropescale freqs --json`.

Tolerance: HF computes in float32 (base ** (2j/d) in f32, then 1/x), ropescale
in float64. The f32 power carries a relative error of about eps32 * |ln(b) * 2j/d|
≈ 6e-8 * 14 ≈ 1e-6 for b = 1e6, so inv_freq is compared to 4e-6 relative.
Attention factors are computed in Python floats by HF: 1e-9 relative.

Usage: hf_oracle.py ROPESCALE_BINARY CONFIG_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped (packages missing).
"""
import copy
import importlib
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401
    import transformers
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
except Exception as e:  # pragma: no cover - the skip path
    print(f"SKIPPED LOUDLY: the HF oracle needs torch + transformers ({e})", flush=True)
    sys.exit(77)

INV_REL_TOL = 4e-6
ATTN_REL_TOL = 1e-9


def hf_default(config):
    """Default RoPE lives on each model's rotary class in transformers v5."""
    mt = config.model_type
    mod = importlib.import_module(f"transformers.models.{mt}.modeling_{mt}")
    for name in dir(mod):
        cls = getattr(mod, name)
        if name.endswith("RotaryEmbedding") and hasattr(cls, "compute_default_rope_parameters"):
            return cls.compute_default_rope_parameters(config)
    fn = ROPE_INIT_FUNCTIONS.get("default")
    if fn is None:
        raise RuntimeError(f"no default rope function for {mt}")
    return fn(config)


def hf_frequencies(raw, seq_len):
    kwargs = copy.deepcopy(raw)
    cfg = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
    params = cfg.rope_parameters
    rope_type = params.get("rope_type", "default")
    if rope_type == "default":
        inv, attn = hf_default(cfg)
    else:
        inv, attn = ROPE_INIT_FUNCTIONS[rope_type](cfg, None, seq_len)
    return rope_type, [float(x) for x in inv.tolist()], float(attn)


def ropescale_frequencies(binary, raw, seq_len):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(raw, f)
        path = f.name
    try:
        cmd = [binary, "freqs", "--config", path, "--json"]
        if seq_len is not None:
            cmd += ["--seq-len", str(seq_len)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"ropescale failed ({out.returncode}): {out.stderr.strip()}")
        j = json.loads(out.stdout)
        return j["rope_type"], j["inv_freq"], j["attention_factor"]
    finally:
        os.unlink(path)


def compare(label, binary, raw, seq_len=None):
    hf_type, hf_inv, hf_attn = hf_frequencies(raw, seq_len)
    rs_type, rs_inv, rs_attn = ropescale_frequencies(binary, raw, seq_len)
    problems = []
    if len(hf_inv) != len(rs_inv):
        problems.append(f"length {len(rs_inv)} != HF {len(hf_inv)}")
    else:
        worst = max(abs(a - b) / abs(b) for a, b in zip(rs_inv, hf_inv))
        if worst > INV_REL_TOL:
            j = max(range(len(hf_inv)), key=lambda i: abs(rs_inv[i] - hf_inv[i]) / abs(hf_inv[i]))
            problems.append(f"inv_freq[{j}] {rs_inv[j]!r} vs HF {hf_inv[j]!r} (rel {worst:.2e})")
    if abs(rs_attn - hf_attn) > ATTN_REL_TOL * abs(hf_attn):
        problems.append(f"attention_factor {rs_attn!r} vs HF {hf_attn!r}")
    worst_rel = max(abs(a - b) / abs(b) for a, b in zip(rs_inv, hf_inv)) if len(hf_inv) == len(rs_inv) else float("nan")
    status = "ok  " if not problems else "FAIL"
    print(f"{status} {label:<58} {hf_type:<9} d/2={len(hf_inv):<3} attn={hf_attn:.9f} max_rel={worst_rel:.1e}"
          + ("" if not problems else "\n     " + "; ".join(problems)), flush=True)
    return not problems


def main():
    binary, config_dir = sys.argv[1], sys.argv[2]
    print(f"HF oracle: transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    cases = []
    for name in sorted(os.listdir(config_dir)):
        raw = json.load(open(os.path.join(config_dir, name, "config.json")))
        if raw.get("model_type") in ("bloom", "mpt"):
            continue  # ALiBi: no rotary frequencies (covered by the C++ tests)
        rs = raw.get("rope_scaling") or {}
        if rs.get("type") == "su":
            # transformers 5.x rejects the pre-release "su" spelling of Phi-3 configs
            # (KeyError: missing original_max_position_embeddings) although ropescale,
            # vLLM and transformers 4.x accept it; compare the "longrope" spelling.
            try:
                hf_frequencies(raw, None)
                print(f"note {name}: this transformers loads the 'su' spelling", flush=True)
            except KeyError as e:
                print(f"note {name}: transformers {transformers.__version__} rejects \"type\": \"su\" ({e}); "
                      "comparing the \"longrope\" spelling", flush=True)
            raw = copy.deepcopy(raw)
            raw["rope_scaling"]["type"] = "longrope"
            name += " (su -> longrope)"
        cases.append((name, raw, None))
        if rs.get("type") in ("su", "longrope") or rs.get("rope_type") == "longrope":
            cases.append((name + " @ seq 8192 (long factors)", raw, 8192))
            cases.append((name + " @ seq 4096 (short factors)", raw, 4096))

    llama = json.load(open(os.path.join(config_dir, "codellama-7b", "config.json")))
    llama["max_position_embeddings"] = 4096
    llama["rope_theta"] = 10000.0
    overrides = [
        ("linear x4", {"rope_type": "linear", "factor": 4.0}, None),
        ("dynamic x2 @ init", {"rope_type": "dynamic", "factor": 2.0}, None),
        ("dynamic x2 @ seq 8192", {"rope_type": "dynamic", "factor": 2.0}, 8192),
        ("dynamic x4 @ seq 16384", {"rope_type": "dynamic", "factor": 4.0}, 16384),
        ("dynamic x4 @ seq 1000 (below L)", {"rope_type": "dynamic", "factor": 4.0}, 1000),
        ("yarn x8", {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}, None),
        ("yarn x16 betas 64/2", {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096,
                                 "beta_fast": 64, "beta_slow": 2}, None),
        ("yarn x40 mscale 0.707/0.707", {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                                         "mscale": 0.707, "mscale_all_dim": 0.707}, None),
        ("yarn x40 mscale 1/0.5", {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                                   "mscale": 1.0, "mscale_all_dim": 0.5}, None),
        ("yarn x4 lone mscale", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
                                 "mscale": 0.707}, None),
        ("yarn x8 as `calibrate` writes it (fractional betas, attention_factor)",
         {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096,
          "beta_fast": 6.274225116689883, "beta_slow": 0.47050050830539947, "attention_factor": 1.1475469464595844}, None),
        ("yarn x4 attention_factor 1.0", {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
                                          "attention_factor": 1.0}, None),
        ("yarn x32 truncate=false", {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                                     "truncate": False}, None),
        ("yarn x2 beta_fast=0 (HF 'or' default)", {"rope_type": "yarn", "factor": 2.0,
                                                   "original_max_position_embeddings": 4096, "beta_fast": 0}, None),
        ("llama3 x8 low1 high4 L2048", {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 2048}, None),
        ("llama3 x16 low2 high8 L1024", {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 2.0,
                                         "high_freq_factor": 8.0, "original_max_position_embeddings": 1024}, None),
        ("longrope synthetic @ seq 8192", {"rope_type": "longrope", "factor": 4.0, "original_max_position_embeddings": 2048,
                                           "short_factor": [1.0 + 0.01 * i for i in range(64)],
                                           "long_factor": [1.0 + 0.5 * i for i in range(64)]}, 8192),
        ("longrope x8 as `calibrate --method longrope` writes it (grid factors up to 2s, attention_factor)",
         {"rope_type": "longrope", "factor": 8.0, "original_max_position_embeddings": 4096, "attention_factor": 1.146,
          "short_factor": [round(1.0 + 0.01 * (i // 8), 2) for i in range(64)],
          "long_factor": [round(min(16.0, 1.0 + 0.27 * i), 2) for i in range(64)]}, 32768),
        ("longrope x8 with each regime's factor (short_mscale 1, long_mscale = attention_factor) past L",
         {"rope_type": "longrope", "factor": 8.0, "original_max_position_embeddings": 4096, "attention_factor": 1.146,
          "short_mscale": 1.0, "long_mscale": 1.146,
          "short_factor": [1.0] * 61 + [2.63, 2.87, 6.56],
          "long_factor": [round(min(16.0, 1.0 + 0.27 * i), 2) for i in range(64)]}, 32768),
        ("longrope synthetic explicit attention_factor", {"rope_type": "longrope", "factor": 4.0,
                                                          "original_max_position_embeddings": 2048, "attention_factor": 1.1,
                                                          "short_factor": [1.0] * 64, "long_factor": [2.0] * 64}, None),
    ]
    for label, rs, seq in overrides:
        raw = copy.deepcopy(llama)
        raw["rope_scaling"] = rs
        cases.append(("llama-7b-shape " + label, raw, seq))
    partial = copy.deepcopy(llama)
    partial["partial_rotary_factor"] = 0.5
    partial["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
    cases.append(("llama-7b-shape partial_rotary 0.5 + yarn x4", partial, None))
    v5 = copy.deepcopy(llama)
    del v5["rope_scaling"]
    del v5["rope_theta"]
    v5["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 50000.0}
    cases.append(("llama-7b-shape rope_parameters (v5 layout) linear x2", v5, None))

    ok = 0
    for label, raw, seq in cases:
        try:
            ok += compare(label, binary, raw, seq)
        except Exception as e:
            print(f"FAIL {label}: {type(e).__name__}: {e}", flush=True)
    print(f"HF oracle: {ok} passed, {len(cases) - ok} failed", flush=True)
    return 0 if ok == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
