#include "ropescale/config/gguf.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "ropescale/config/error.h"

namespace ropescale {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 3;
constexpr uint64_t kMaxKeyLength = 65535;

// Bounds-checked little-endian reader over untrusted bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& path) : b_(b), path_(path) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what, uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
    const uint64_t n = read<uint64_t>(what);
    if (n > max_len) fail(std::string(what) + " length " + std::to_string(n) + " exceeds the limit");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw_unreadable(path_, "GGUF: " + why + " (at byte " + std::to_string(pos_) + " of " +
                                std::to_string(b_.size()) + ")");
  }
  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("truncated while reading ") + what + ": needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " left");
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& path_;
  uint64_t pos_ = 0;
};

uint64_t min_encoded_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::Uint8: case GgufValueType::Int8: case GgufValueType::Bool: return 1;
    case GgufValueType::Uint16: case GgufValueType::Int16: return 2;
    case GgufValueType::Uint32: case GgufValueType::Int32: case GgufValueType::Float32: return 4;
    case GgufValueType::Uint64: case GgufValueType::Int64: case GgufValueType::Float64: return 8;
    case GgufValueType::String: return 8;
    case GgufValueType::Array: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= 12; }

json read_value(Cursor& c, GgufValueType t, int depth, GgufValueType* array_type) {
  switch (t) {
    case GgufValueType::Uint8: return c.read<uint8_t>("uint8 value");
    case GgufValueType::Int8: return c.read<int8_t>("int8 value");
    case GgufValueType::Uint16: return c.read<uint16_t>("uint16 value");
    case GgufValueType::Int16: return c.read<int16_t>("int16 value");
    case GgufValueType::Uint32: return c.read<uint32_t>("uint32 value");
    case GgufValueType::Int32: return c.read<int32_t>("int32 value");
    case GgufValueType::Uint64: return c.read<uint64_t>("uint64 value");
    case GgufValueType::Int64: return c.read<int64_t>("int64 value");
    case GgufValueType::Float32: return static_cast<double>(c.read<float>("float32 value"));
    case GgufValueType::Float64: return c.read<double>("float64 value");
    case GgufValueType::Bool: {
      const uint8_t v = c.read<uint8_t>("bool value");
      if (v > 1) c.fail("bool value " + std::to_string(v) + " is neither 0 nor 1");
      return v == 1;
    }
    case GgufValueType::String: return c.read_string("string value");
    case GgufValueType::Array: {
      if (depth >= kMaxArrayDepth) c.fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      const uint32_t et = c.read<uint32_t>("array element type");
      if (!valid_value_type(et)) c.fail("unknown array element type " + std::to_string(et));
      const uint64_t n = c.read<uint64_t>("array length");
      const auto elem = static_cast<GgufValueType>(et);
      if (n > c.remaining() / min_encoded_size(elem))
        c.fail("array length " + std::to_string(n) + " cannot fit in the bytes left");
      if (array_type) *array_type = elem;
      json a = json::array();
      a.get_ref<json::array_t&>().reserve(n);
      for (uint64_t i = 0; i < n; ++i) a.push_back(read_value(c, elem, depth + 1, nullptr));
      return a;
    }
  }
  c.fail("unknown value type");
}

void write_raw(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
template <class T>
void write_pod(std::vector<uint8_t>& out, T v) { write_raw(out, &v, sizeof(T)); }
void write_string(std::vector<uint8_t>& out, const std::string& s) {
  write_pod<uint64_t>(out, s.size());
  write_raw(out, s.data(), s.size());
}

void write_value(std::vector<uint8_t>& out, GgufValueType t, GgufValueType at, const json& v) {
  switch (t) {
    case GgufValueType::Uint8: write_pod(out, v.get<uint8_t>()); break;
    case GgufValueType::Int8: write_pod(out, v.get<int8_t>()); break;
    case GgufValueType::Uint16: write_pod(out, v.get<uint16_t>()); break;
    case GgufValueType::Int16: write_pod(out, v.get<int16_t>()); break;
    case GgufValueType::Uint32: write_pod(out, v.get<uint32_t>()); break;
    case GgufValueType::Int32: write_pod(out, v.get<int32_t>()); break;
    case GgufValueType::Uint64: write_pod(out, v.get<uint64_t>()); break;
    case GgufValueType::Int64: write_pod(out, v.get<int64_t>()); break;
    case GgufValueType::Float32: write_pod(out, static_cast<float>(v.get<double>())); break;
    case GgufValueType::Float64: write_pod(out, v.get<double>()); break;
    case GgufValueType::Bool: write_pod<uint8_t>(out, v.get<bool>() ? 1 : 0); break;
    case GgufValueType::String: write_string(out, v.get<std::string>()); break;
    case GgufValueType::Array:
      write_pod(out, static_cast<uint32_t>(at));
      write_pod<uint64_t>(out, v.size());
      for (const auto& e : v) write_value(out, at, GgufValueType::Uint8, e);
      break;
  }
}

}  // namespace

std::optional<uint64_t> ggml_type_bytes(uint32_t type, uint64_t n) {
  uint64_t block = 1, bytes = 0;
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: case GgmlType::I32: bytes = 4; break;
    case GgmlType::F16: case GgmlType::BF16: case GgmlType::I16: bytes = 2; break;
    case GgmlType::I8: bytes = 1; break;
    case GgmlType::I64: case GgmlType::F64: bytes = 8; break;
    case GgmlType::Q4_0: block = 32; bytes = 18; break;
    case GgmlType::Q4_1: block = 32; bytes = 20; break;
    case GgmlType::Q5_0: block = 32; bytes = 22; break;
    case GgmlType::Q5_1: block = 32; bytes = 24; break;
    case GgmlType::Q8_0: block = 32; bytes = 34; break;
    case GgmlType::Q8_1: block = 32; bytes = 36; break;
    case GgmlType::Q2_K: block = 256; bytes = 84; break;
    case GgmlType::Q3_K: block = 256; bytes = 110; break;
    case GgmlType::Q4_K: block = 256; bytes = 144; break;
    case GgmlType::Q5_K: block = 256; bytes = 176; break;
    case GgmlType::Q6_K: block = 256; bytes = 210; break;
    case GgmlType::Q8_K: block = 256; bytes = 292; break;
    default: return std::nullopt;
  }
  if (n % block != 0) return std::nullopt;
  const uint64_t blocks = n / block;
  if (blocks > std::numeric_limits<uint64_t>::max() / bytes) return std::nullopt;
  return blocks * bytes;
}

std::string ggml_type_name(uint32_t t) {
  static const char* names[] = {"F32", "F16", "Q4_0", "Q4_1", "?", "?", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"};
  if (t < 16) return names[t];
  switch (t) {
    case 24: return "I8";
    case 25: return "I16";
    case 26: return "I32";
    case 27: return "I64";
    case 28: return "F64";
    case 30: return "BF16";
  }
  return "type" + std::to_string(t);
}

uint64_t GgufTensorInfo::elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;  // overflow ruled out by parse_gguf
  return n;
}

const GgufKeyValue* GgufFile::find(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.key == key) return &kv;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

GgufFile parse_gguf(std::span<const uint8_t> bytes, const std::string& path) {
  Cursor c(bytes, path);
  GgufFile f;
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != 0x46554747u)  // "GGUF"
    c.fail("bad magic (not a GGUF file)");
  f.version = c.read<uint32_t>("version");
  if (f.version != 2 && f.version != 3)
    c.fail("unsupported version " + std::to_string(f.version) + " (2 and 3 are supported)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each key/value takes ≥ 13 bytes (key length, type, 1-byte value); each tensor info ≥ 24.
  if (n_kv > c.remaining() / 13) c.fail("metadata count " + std::to_string(n_kv) + " cannot fit in the file");
  if (n_tensors > c.remaining() / 24) c.fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the file");

  std::set<std::string> keys;
  f.metadata.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKeyValue kv;
    kv.key = c.read_string("metadata key", kMaxKeyLength);
    if (kv.key.empty()) c.fail("empty metadata key");
    if (!keys.insert(kv.key).second) c.fail("duplicate metadata key '" + kv.key + "'");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (!valid_value_type(t)) c.fail("key '" + kv.key + "' has unknown value type " + std::to_string(t));
    kv.type = static_cast<GgufValueType>(t);
    kv.value = read_value(c, kv.type, 0, &kv.array_type);
    f.metadata.push_back(std::move(kv));
  }
  if (const auto* a = f.find("general.alignment")) {
    if (a->type != GgufValueType::Uint32) c.fail("general.alignment must be uint32");
    const uint64_t al = a->value.get<uint64_t>();
    if (al == 0 || (al & (al - 1)) != 0) c.fail("general.alignment " + std::to_string(al) + " is not a power of two");
    f.alignment = al;
  }

  std::set<std::string> names;
  f.tensors.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor name", 64 * 1024);
    if (!names.insert(t.name).second) c.fail("duplicate tensor name '" + t.name + "'");
    const uint32_t nd = c.read<uint32_t>("tensor dimension count");
    if (nd == 0 || nd > kMaxDims)
      c.fail("tensor '" + t.name + "' has " + std::to_string(nd) + " dimensions (1 to 4 allowed)");
    uint64_t elements = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > (uint64_t(1) << 40) || elements > std::numeric_limits<uint64_t>::max() / ne)
        c.fail("tensor '" + t.name + "' dimension " + std::to_string(d) + " = " + std::to_string(ne) + " is absurd");
      elements *= ne;
      t.dims.push_back(ne);
    }
    t.type = c.read<uint32_t>("tensor type");
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % f.alignment != 0)
      c.fail("tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " +
             std::to_string(f.alignment));
    t.n_bytes = ggml_type_bytes(t.type, elements);
    f.tensors.push_back(std::move(t));
  }
  f.data_offset = (c.pos() + f.alignment - 1) / f.alignment * f.alignment;
  if (!f.tensors.empty() && f.data_offset > bytes.size()) c.fail("data section starts past the end of the file");
  for (const auto& t : f.tensors) {
    const uint64_t data_size = bytes.size() - std::min<uint64_t>(f.data_offset, bytes.size());
    const uint64_t need = t.n_bytes.value_or(0);
    if (t.offset > data_size || need > data_size - t.offset)
      throw_unreadable(path, "GGUF: tensor '" + t.name + "' (" + ggml_type_name(t.type) + ", " +
                                 std::to_string(need) + " bytes at data offset " + std::to_string(t.offset) +
                                 ") extends past the end of the file (truncated?)");
  }
  return f;
}

std::vector<float> read_f32_tensor(std::span<const uint8_t> bytes, const GgufFile& f, const GgufTensorInfo& t,
                                   const std::string& path) {
  if (t.type != static_cast<uint32_t>(GgmlType::F32))
    throw_invalid(path, "tensor " + t.name, ggml_type_name(t.type), "must be F32");
  const uint64_t n = t.elements();
  // parse_gguf proved the range lies inside the file.
  std::vector<float> out(n);
  std::memcpy(out.data(), bytes.data() + f.data_offset + t.offset, n * sizeof(float));
  return out;
}

std::vector<uint8_t> serialize_gguf(const std::vector<GgufKeyValue>& metadata,
                                    const std::vector<GgufTensorData>& tensors, uint64_t alignment) {
  std::vector<uint8_t> out;
  write_pod<uint32_t>(out, 0x46554747u);
  write_pod<uint32_t>(out, 3);
  write_pod<uint64_t>(out, tensors.size());
  write_pod<uint64_t>(out, metadata.size());
  for (const auto& kv : metadata) {
    write_string(out, kv.key);
    write_pod(out, static_cast<uint32_t>(kv.type));
    write_value(out, kv.type, kv.array_type, kv.value);
  }
  auto align = [&](uint64_t x) { return (x + alignment - 1) / alignment * alignment; };
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    write_string(out, t.name);
    write_pod<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) write_pod(out, d);
    write_pod(out, t.type);
    write_pod(out, offset);
    offset = align(offset + t.data.size());
  }
  out.resize(align(out.size()), 0);
  for (const auto& t : tensors) {
    write_raw(out, t.data.data(), t.data.size());
    out.resize(align(out.size()), 0);
  }
  return out;
}

}  // namespace ropescale
