"""The PyPI `gguf` package (llama.cpp's own reader) as the oracle for GGUF files
ropescale writes: every tensor and key must parse, with llama.cpp's names,
shapes and types, and the values must match the source checkpoint.

Usage: gguf_oracle.py ROPESCALE_BINARY STORIES260K_DIR
Exit 0 = all agree, 1 = a mismatch, 77 = skipped (package or model missing).
"""
import os
import struct
import sys
import tempfile

from oracle_support import convert, stories260k

try:
    import numpy as np
    from gguf import GGUFReader
except Exception as e:  # pragma: no cover - the skip path
    print(f"SKIPPED LOUDLY: the GGUF oracle needs the gguf package ({e})", flush=True)
    sys.exit(77)


def field(reader, key):
    f = reader.fields[key]
    if f.types and f.types[0].name == "STRING":
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    if f.types and f.types[0].name == "ARRAY":
        return [f.parts[i] for i in f.data]
    return f.parts[f.data[0]][0]


def legacy_llama2c(path):
    """Reads the stories260K legacy checkpoint with numpy (independent of ropescale)."""
    raw = open(path, "rb").read()
    dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("7i", raw[:28])
    w = np.frombuffer(raw[28:], dtype=np.float32)
    hd = dim // heads
    sizes = [("tok", vocab * dim), ("att_norm", layers * dim), ("wq", layers * dim * heads * hd),
             ("wk", layers * dim * kv_heads * hd), ("wv", layers * dim * kv_heads * hd), ("wo", layers * heads * hd * dim),
             ("ffn_norm", layers * dim), ("w1", layers * hidden * dim), ("w2", layers * dim * hidden),
             ("w3", layers * hidden * dim), ("norm", dim)]
    out, off = {}, 0
    for name, n in sizes:
        out[name] = w[off:off + n]
        off += n
    return dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, vocab=vocab, seq=seq, w=out)


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    src = stories260k(model_dir)
    if not src:
        return 77
    ref = legacy_llama2c(src)
    failures, checks = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, rope in [("f32", None), ("f16", '{"rope_type":"yarn","factor":8}'), ("bf16", None), ("q8_0", None),
                            ("f32", '{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4}')]:
            out = os.path.join(tmp, f"stories-{dtype}.gguf")
            convert(binary, src, out, rope, "--dtype", dtype)
            r = GGUFReader(out)
            label = f"{dtype} {rope or 'default'}"

            def expect(cond, what):
                nonlocal checks
                checks += 1
                if not cond:
                    failures.append(f"{label}: {what}")

            expect(field(r, "general.architecture") == "llama", "general.architecture")
            expect(int(field(r, "llama.embedding_length")) == ref["dim"], "embedding_length")
            expect(int(field(r, "llama.block_count")) == ref["layers"], "block_count")
            expect(int(field(r, "llama.attention.head_count_kv")) == ref["kv_heads"], "head_count_kv")
            expect(int(field(r, "llama.feed_forward_length")) == ref["hidden"], "feed_forward_length")
            expect(len(r.fields["tokenizer.ggml.tokens"].data) == ref["vocab"], "vocabulary size")
            tensors = {t.name: t for t in r.tensors}
            expect(len(tensors) >= 2 + 9 * ref["layers"], f"tensor count {len(tensors)}")
            emb = tensors["token_embd.weight"]
            expect(list(emb.shape) == [ref["dim"], ref["vocab"]], f"token_embd shape {list(emb.shape)}")
            q = tensors["blk.2.attn_q.weight"]
            expect(q.tensor_type.name == dtype.upper(), f"attn_q type {q.tensor_type.name}")
            if dtype == "f32":
                got = np.asarray(q.data, dtype=np.float32).reshape(-1)
                want = ref["w"]["wq"].reshape(ref["layers"], -1)[2]
                expect(np.array_equal(got, want), "blk.2.attn_q values (Meta row order)")
                norm = np.asarray(tensors["output_norm.weight"].data).reshape(-1)
                expect(np.array_equal(norm, ref["w"]["norm"]), "output_norm values")
            if dtype == "f16":
                got = np.asarray(tensors["blk.0.ffn_down.weight"].data, dtype=np.float32).reshape(-1)
                want = ref["w"]["w2"].reshape(ref["layers"], -1)[0]
                expect(np.max(np.abs(got - want)) <= 1e-3 * max(1.0, np.max(np.abs(want))), "blk.0.ffn_down values (f16)")
                expect(field(r, "llama.rope.scaling.type") == "yarn", "rope.scaling.type")
                expect(abs(float(field(r, "llama.rope.scaling.factor")) - 8.0) < 1e-6, "rope.scaling.factor")
                expect(int(field(r, "llama.rope.scaling.original_context_length")) == ref["seq"], "original_context_length")
            if rope and "llama3" in rope:
                expect("rope_freqs.weight" in tensors, "rope_freqs.weight tensor")
            print(f"ok   {label}: {len(tensors)} tensors, {len(r.fields)} keys", flush=True)
    for f in failures:
        print("FAIL " + f, flush=True)
    print(f"GGUF oracle: {checks - len(failures)} passed, {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
