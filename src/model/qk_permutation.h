// Q/K row orders. Meta / llama2.c / GGUF-llama weights rotate interleaved pairs
// (x[2i], x[2i+1]); Hugging Face Llama weights are the same rows permuted so
// that rotate_half (pairs (x[i], x[i + hd/2])) computes identical scores:
// HF row (h·hd + r·hd/2 + i) = Meta row (h·hd + 2i + r), r ∈ {0, 1}.
#pragma once

#include <cstring>
#include <vector>

namespace ropescale::detail {

inline std::vector<float> permute_qk_rows(const std::vector<float>& w, int heads, int hd, int cols, bool meta_to_hf) {
  std::vector<float> out(w.size());
  for (int h = 0; h < heads; ++h)
    for (int r = 0; r < 2; ++r)
      for (int i = 0; i < hd / 2; ++i) {
        const size_t hf = size_t(h) * hd + r * (hd / 2) + i, meta = size_t(h) * hd + 2 * i + r;
        const size_t dst = meta_to_hf ? hf : meta, src = meta_to_hf ? meta : hf;
        std::memcpy(&out[dst * cols], &w[src * cols], cols * sizeof(float));
      }
  return out;
}

}  // namespace ropescale::detail
