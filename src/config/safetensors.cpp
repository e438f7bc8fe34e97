#include "ropescale/config/safetensors.h"

#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "ropescale/config/error.h"

namespace ropescale {

using nlohmann::json;

namespace {

uint64_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

}  // namespace

SafetensorsFile parse_safetensors(std::span<const uint8_t> b, const std::string& path) {
  auto fail = [&](const std::string& why) { throw_unreadable(path, "safetensors: " + why); };
  if (b.size() < 8) fail("file too small for the header length");
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  if (n > b.size() - 8 || n > (uint64_t(100) << 20)) fail("header length " + std::to_string(n) + " exceeds the file");
  json h;
  try {
    h = json::parse(b.begin() + 8, b.begin() + 8 + static_cast<long>(n));
  } catch (const json::exception& e) {
    fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!h.is_object()) fail("header must be a JSON object");
  SafetensorsFile f;
  f.data_offset = 8 + n;
  const uint64_t data_size = b.size() - f.data_offset;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail("__metadata__ must be an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) f.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    const json& t = *it;
    const std::string& name = it.key();
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") || !t["shape"].is_array() ||
        !t.contains("data_offsets") || !t["data_offsets"].is_array() || t["data_offsets"].size() != 2)
      fail("tensor '" + name + "' needs dtype, shape and data_offsets [begin, end]");
    SafetensorsTensor st;
    st.dtype = t["dtype"].get<std::string>();
    const uint64_t eb = dtype_bytes(st.dtype);
    if (!eb) fail("tensor '" + name + "' has unknown dtype " + st.dtype);
    uint64_t elements = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned()) fail("tensor '" + name + "' has a non-integer dimension");
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && elements > std::numeric_limits<uint64_t>::max() / v / eb) fail("tensor '" + name + "' is absurdly large");
      elements *= v;
      st.shape.push_back(v);
    }
    for (const auto& o : t["data_offsets"])
      if (!o.is_number_unsigned()) fail("tensor '" + name + "' has a non-integer data offset");
    st.begin = t["data_offsets"][0].get<uint64_t>();
    st.end = t["data_offsets"][1].get<uint64_t>();
    if (st.begin > st.end || st.end > data_size)
      fail("tensor '" + name + "' data [" + std::to_string(st.begin) + ", " + std::to_string(st.end) +
           ") lies outside the " + std::to_string(data_size) + "-byte data section (truncated?)");
    if (st.end - st.begin != elements * eb)
      fail("tensor '" + name + "' has " + std::to_string(st.end - st.begin) + " bytes, its shape and dtype need " +
           std::to_string(elements * eb));
    f.tensors.emplace(name, std::move(st));
  }
  return f;
}

std::span<const uint8_t> safetensors_data(std::span<const uint8_t> b, const SafetensorsFile& f, const std::string& name,
                                          const std::string& path) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) throw_invalid(path, "tensor " + name, "(missing)", "required");
  return b.subspan(f.data_offset + it->second.begin, it->second.end - it->second.begin);
}

std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsTensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  uint64_t off = 0;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.data.size()}}};
    off += t.data.size();
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string header = h.dump();
  while ((8 + header.size()) % 8) header += ' ';  // align the data section to 8 bytes
  const uint64_t n = header.size();
  std::vector<uint8_t> out(8 + n + off);
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), n);
  size_t pos = 8 + n;
  for (const auto& t : tensors) {
    if (!t.data.empty()) std::memcpy(out.data() + pos, t.data.data(), t.data.size());
    pos += t.data.size();
  }
  return out;
}

}  // namespace ropescale
