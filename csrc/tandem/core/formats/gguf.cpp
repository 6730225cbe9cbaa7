#include "tandem/core/formats/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <torch/torch.h>

namespace tandem::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
enum ValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// Bounds-checked little-endian reader over the mapping.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  size_t pos() const { return pos_; }
  void need(uint64_t k, const char* what) const {
    if (k > n_ - pos_)
      throw GgufError(path_ + ": truncated GGUF file: " + what + " at byte " + std::to_string(pos_) +
                      " needs " + std::to_string(k) + " bytes, " + std::to_string(n_ - pos_) + " left");
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
  const std::string& path_;
};

Value read_value(Cursor& c, uint32_t type, const std::string& path, const std::string& key, int depth) {
  Value out;
  out.type = type;
  switch (type) {
    case UINT8: out.v = static_cast<uint64_t>(c.read<uint8_t>("value")); break;
    case INT8: out.v = static_cast<int64_t>(c.read<int8_t>("value")); break;
    case UINT16: out.v = static_cast<uint64_t>(c.read<uint16_t>("value")); break;
    case INT16: out.v = static_cast<int64_t>(c.read<int16_t>("value")); break;
    case UINT32: out.v = static_cast<uint64_t>(c.read<uint32_t>("value")); break;
    case INT32: out.v = static_cast<int64_t>(c.read<int32_t>("value")); break;
    case UINT64: out.v = c.read<uint64_t>("value"); break;
    case INT64: out.v = c.read<int64_t>("value"); break;
    case FLOAT32: out.v = static_cast<double>(c.read<float>("value")); break;
    case FLOAT64: out.v = c.read<double>("value"); break;
    case BOOL: out.v = c.read<uint8_t>("value") != 0; break;
    case STRING: out.v = c.str("string value"); break;
    case ARRAY: {
      if (depth > 2) throw GgufError(path + ": metadata '" + key + "': arrays nested too deeply");
      const uint32_t et = c.read<uint32_t>("array type");
      const uint64_t n = c.read<uint64_t>("array length");
      // Each element takes at least one byte: a count beyond the file is corruption.
      c.need(n, "array elements");
      std::vector<Value> items;
      items.reserve(n);
      for (uint64_t i = 0; i < n; ++i) items.push_back(read_value(c, et, path, key, depth + 1));
      out.v = std::move(items);
      break;
    }
    default:
      throw GgufError(path + ": metadata '" + key + "' has unknown value type " + std::to_string(type));
  }
  return out;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw GgufError(path + ": cannot open GGUF file: " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  size_ = static_cast<size_t>(st.st_size);
  void* addr = size_ ? ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (addr == MAP_FAILED) throw GgufError(path + ": cannot map: " + std::strerror(errno));
  const size_t sz = size_;
  map_ = std::shared_ptr<void>(addr, [sz](void* a) {
    if (a) ::munmap(a, sz);
  });
  base_ = static_cast<const uint8_t*>(addr);

  Cursor c(base_, size_, path_);
  if (size_ < 4 || c.read<uint32_t>("magic") != kMagic)
    throw GgufError(path + ": not a GGUF file (expected the magic bytes 'GGUF' at the start)");
  version_ = c.read<uint32_t>("version");
  if (version_ < 2 || version_ > 3)
    throw GgufError(path + ": unsupported GGUF version " + std::to_string(version_) + " (expected 2 or 3)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > size_ || n_kv > size_)
    throw GgufError(path + ": corrupt GGUF header: " + std::to_string(n_tensors) + " tensors and " +
                    std::to_string(n_kv) + " metadata entries cannot fit in " + std::to_string(size_) + " bytes");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str("metadata key");
    const uint32_t type = c.read<uint32_t>("metadata type");
    meta_[key] = read_value(c, type, path_, key, 0);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo ti;
    ti.name = c.str("tensor name");
    const uint32_t nd = c.read<uint32_t>("tensor rank");
    if (nd == 0 || nd > 8) throw GgufError(path + ": tensor '" + ti.name + "' has rank " + std::to_string(nd));
    uint64_t elements = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t dim = c.read<uint64_t>("tensor dim");
      if (dim == 0 || dim > (1ULL << 40)) throw GgufError(path + ": tensor '" + ti.name + "' has bad dimension " + std::to_string(dim));
      // The element count must not overflow (each dimension alone may be fine): 2^50 at most,
      // far beyond any file this could be; the size check against the file comes below.
      if (elements > (1ULL << 50) / dim)
        throw GgufError(path + ": tensor '" + ti.name + "' has dimensions whose product exceeds 2^50 elements");
      elements *= dim;
      ti.ne.push_back(static_cast<int64_t>(dim));
    }
    ti.type = c.read<uint32_t>("tensor type");
    ti.offset = c.read<uint64_t>("tensor offset");
    const TypeTraits* tr = type_traits(ti.type);
    if (!tr) throw GgufError(path + ": tensor '" + ti.name + "' has unknown GGML type " + std::to_string(ti.type));
    if (ti.ne[0] % tr->block_size != 0)
      throw GgufError(path + ": tensor '" + ti.name + "': row length " + std::to_string(ti.ne[0]) +
                      " is not a multiple of the " + tr->name + " block size " + std::to_string(tr->block_size));
    ti.nbytes = static_cast<uint64_t>(ti.numel() / tr->block_size * tr->block_bytes);
    if (index_.count(ti.name)) throw GgufError(path + ": duplicate tensor name '" + ti.name + "'");
    index_[ti.name] = infos_.size();
    infos_.push_back(std::move(ti));
  }
  const uint64_t align = static_cast<uint64_t>(get_int("general.alignment", 32));
  if (align == 0 || (align & (align - 1))) throw GgufError(path + ": general.alignment " + std::to_string(align) + " is not a power of two");
  data_start_ = (c.pos() + align - 1) / align * align;
  for (const auto& ti : infos_) {
    if (data_start_ > size_ || ti.offset > size_ - data_start_ || ti.nbytes > size_ - data_start_ - ti.offset)
      throw GgufError(path + ": truncated GGUF file: tensor '" + ti.name + "' (" + std::to_string(ti.nbytes) +
                      " bytes at data offset " + std::to_string(ti.offset) + ") runs past the end of the " +
                      std::to_string(size_) + "-byte file");
  }
}

GgufFile::~GgufFile() = default;

namespace {
[[noreturn]] void bad_key(const std::string& path, const std::string& key, const char* expected) {
  throw GgufError(path + ": metadata '" + key + "': expected " + expected);
}
const Value& find(const std::map<std::string, Value>& m, const std::string& path, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) throw GgufError(path + ": missing metadata key '" + key + "'");
  return it->second;
}
bool as_int(const Value& v, int64_t& out) {
  if (auto* i = std::get_if<int64_t>(&v.v)) return out = *i, true;
  if (auto* u = std::get_if<uint64_t>(&v.v)) return out = static_cast<int64_t>(*u), true;
  return false;
}
bool as_float(const Value& v, double& out) {
  if (auto* d = std::get_if<double>(&v.v)) return out = *d, true;
  int64_t i;
  if (as_int(v, i)) return out = static_cast<double>(i), true;
  return false;
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const Value& v = find(meta_, path_, key);
  if (auto* s = std::get_if<std::string>(&v.v)) return *s;
  bad_key(path_, key, "a string");
}

int64_t GgufFile::get_int(const std::string& key) const {
  int64_t out;
  if (!as_int(find(meta_, path_, key), out)) bad_key(path_, key, "an integer");
  return out;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key) const {
  double out;
  if (!as_float(find(meta_, path_, key), out)) bad_key(path_, key, "a number");
  return out;
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key) const {
  const Value& v = find(meta_, path_, key);
  if (auto* b = std::get_if<bool>(&v.v)) return *b;
  bad_key(path_, key, "true or false");
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const Value& v = find(meta_, path_, key);
  const auto* arr = std::get_if<std::vector<Value>>(&v.v);
  if (!arr) bad_key(path_, key, "an array of strings");
  std::vector<std::string> out;
  out.reserve(arr->size());
  for (const auto& e : *arr) {
    const auto* s = std::get_if<std::string>(&e.v);
    if (!s) bad_key(path_, key, "an array of strings");
    out.push_back(*s);
  }
  return out;
}

std::vector<double> GgufFile::get_floats(const std::string& key) const {
  const Value& v = find(meta_, path_, key);
  const auto* arr = std::get_if<std::vector<Value>>(&v.v);
  if (!arr) bad_key(path_, key, "an array of numbers");
  std::vector<double> out;
  for (const auto& e : *arr) {
    double d;
    if (!as_float(e, d)) bad_key(path_, key, "an array of numbers");
    out.push_back(d);
  }
  return out;
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const Value& v = find(meta_, path_, key);
  const auto* arr = std::get_if<std::vector<Value>>(&v.v);
  if (!arr) bad_key(path_, key, "an array of integers");
  std::vector<int64_t> out;
  for (const auto& e : *arr) {
    int64_t i;
    if (!as_int(e, i)) bad_key(path_, key, "an array of integers");
    out.push_back(i);
  }
  return out;
}

bool GgufFile::has_tensor(const std::string& name) const { return index_.count(name) > 0; }

const TensorInfo& GgufFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw GgufError(path_ + ": no tensor named '" + name + "'");
  return infos_[it->second];
}

at::Tensor GgufFile::raw(const std::string& name) const {
  const TensorInfo& ti = info(name);
  auto keep = map_;
  return torch::from_blob(const_cast<uint8_t*>(base_ + data_start_ + ti.offset), {static_cast<int64_t>(ti.nbytes)},
                          [keep](void*) {}, torch::kUInt8);
}

at::Tensor GgufFile::load(const std::string& name, c10::ScalarType dtype) const {
  const TensorInfo& ti = info(name);
  const TypeTraits* tr = type_traits(ti.type);
  if (!tr->supported)
    throw GgufError(path_ + ": tensor '" + name + "' uses GGML type " + tr->name + ", which tandem cannot dequantize");
  at::Tensor out = torch::empty(ti.shape(), torch::kFloat);
  const uint8_t* src = base_ + data_start_ + ti.offset;
  const int64_t row = ti.ne[0], rows = ti.numel() / row;
  float* dst = out.data_ptr<float>();
  // Rows are independent: spread them over torch's intra-op threads.
  at::parallel_for(0, rows, 64, [&](int64_t b, int64_t e) {
    dequantize_rows(static_cast<GgmlType>(ti.type), src, row, b, e, dst);
  });
  return dtype == torch::kFloat ? out : out.to(dtype);
}

}  // namespace tandem::gguf
