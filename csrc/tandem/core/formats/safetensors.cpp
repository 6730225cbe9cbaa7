#include "tandem/core/formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/files.h"

namespace tandem {
namespace {

const std::vector<std::pair<std::string, c10::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, c10::ScalarType>> t = {
      {"F64", c10::kDouble}, {"F32", c10::kFloat},  {"F16", c10::kHalf},  {"BF16", c10::kBFloat16},
      {"I64", c10::kLong},   {"I32", c10::kInt},    {"I16", c10::kShort}, {"I8", c10::kChar},
      {"U8", c10::kByte},    {"BOOL", c10::kBool},
  };
  return t;
}

// A read-only file mapped privately: tensors may be modified in place (copy-on-write)
// without touching the file.
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) ::munmap(addr, size);
  }
};

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw SafetensorsError(path + ": not a valid safetensors file: " + what);
}

}  // namespace

std::string safetensors_dtype(c10::ScalarType t) {
  for (const auto& kv : dtype_table())
    if (kv.second == t) return kv.first;
  throw SafetensorsError(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

const at::Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return kv.second;
  throw SafetensorsError(path + ": no tensor named '" + name + "'");
}

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& kv : tensors)
    if (kv.first == name) return true;
  return false;
}

SafetensorsFile load_safetensors(const std::string& path, bool mmap) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SafetensorsError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw SafetensorsError(path + ": cannot stat: " + std::strerror(errno));
  }
  const size_t fsize = static_cast<size_t>(st.st_size);
  if (fsize < 8) {
    ::close(fd);
    bad(path, "file is " + std::to_string(fsize) + " bytes, shorter than the 8-byte header length");
  }
  auto map = std::make_shared<Mapping>();
  map->size = fsize;
  map->addr = ::mmap(nullptr, fsize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map->addr == MAP_FAILED) throw SafetensorsError(path + ": cannot map: " + std::strerror(errno));
  const auto* base = static_cast<const uint8_t*>(map->addr);

  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > fsize - 8)
    bad(path, "header length " + std::to_string(hlen) + " exceeds the file size " + std::to_string(fsize) +
                  " (truncated file?)");
  nlohmann::ordered_json header;  // keeps the file's tensor order
  try {
    header = nlohmann::ordered_json::parse(base + 8, base + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) bad(path, "header is not a JSON object");
  const size_t data_start = 8 + hlen, data_size = fsize - data_start;
  const uint8_t* data = base + data_start;

  SafetensorsFile out;
  out.path = path;
  // Tensors are laid out by offset; collect them in that order and check they tile the buffer.
  std::vector<std::tuple<uint64_t, uint64_t, std::string, c10::ScalarType, std::vector<int64_t>>> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(path, "__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad(path, "tensor '" + name + "' lacks dtype, shape or data_offsets");
    if (!v["dtype"].is_string()) bad(path, "tensor '" + name + "': dtype is not a string");
    const std::string code = v["dtype"].get<std::string>();
    c10::ScalarType st_type = c10::kFloat;
    bool found = false;
    for (const auto& kv : dtype_table())
      if (kv.first == code) st_type = kv.second, found = true;
    if (!found) bad(path, "tensor '" + name + "' has unsupported dtype '" + code + "'");
    const auto& shape_j = v["shape"];
    const auto& off_j = v["data_offsets"];
    if (!shape_j.is_array() || !off_j.is_array() || off_j.size() != 2)
      bad(path, "tensor '" + name + "': shape must be a list and data_offsets a pair");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : shape_j) {
      if (!d.is_number_unsigned()) bad(path, "tensor '" + name + "': shape entries must be integers >= 0");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ULL << 50) || (dim != 0 && numel > (1ULL << 50) / dim))
        bad(path, "tensor '" + name + "': shape " + shape_j.dump() + " has more than 2^50 elements");
      numel *= dim;
      shape.push_back(static_cast<int64_t>(dim));
    }
    if (!off_j[0].is_number_unsigned() || !off_j[1].is_number_unsigned())
      bad(path, "tensor '" + name + "': data_offsets must be integers >= 0");
    uint64_t b = off_j[0].get<uint64_t>(), e = off_j[1].get<uint64_t>();
    if (e < b || e > data_size)
      bad(path, "tensor '" + name + "': data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                    "] fall outside the " + std::to_string(data_size) + "-byte data section (truncated file?)");
    const uint64_t need = numel * c10::elementSize(st_type);
    if (e - b != need)
      bad(path, "tensor '" + name + "': " + std::to_string(e - b) + " bytes for " + code + " shape of " +
                    std::to_string(numel) + " elements (" + std::to_string(need) + " bytes expected)");
    entries.emplace_back(b, e, name, st_type, shape);
  }
  std::sort(entries.begin(), entries.end());
  uint64_t cursor = 0;
  for (const auto& en : entries) {
    if (std::get<0>(en) != cursor)
      bad(path, "tensor '" + std::get<2>(en) + "' does not start where the previous one ends (gap or overlap)");
    cursor = std::get<1>(en);
  }
  if (cursor != data_size)
    bad(path, std::to_string(data_size - cursor) + " trailing bytes after the last tensor");

  // Restore header order for callers that care (HF files list tensors by name).
  std::map<std::string, size_t> order;
  size_t idx = 0;
  for (auto it = header.begin(); it != header.end(); ++it) order[it.key()] = idx++;
  std::sort(entries.begin(), entries.end(),
            [&](const auto& a, const auto& b) { return order[std::get<2>(a)] < order[std::get<2>(b)]; });
  for (const auto& [b, e, name, dtype, shape] : entries) {
    auto opts = torch::TensorOptions().dtype(dtype);
    void* ptr = const_cast<uint8_t*>(data + b);
    const bool aligned = reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(dtype) == 0;
    at::Tensor t;
    if (mmap && aligned && e > b) {
      t = torch::from_blob(ptr, shape, [map](void*) {}, opts);
    } else {
      t = torch::empty(shape, opts);
      if (e > b) std::memcpy(t.data_ptr(), ptr, e - b);
    }
    out.tensors.emplace_back(name, t);
  }
  return out;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    header["__metadata__"] = m;
  }
  std::vector<at::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw SafetensorsError(path + ": '__metadata__' is not a valid tensor name");
    if (header.contains(name)) throw SafetensorsError(path + ": duplicate tensor name '" + name + "'");
    at::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t n = c.numel() * c.element_size();
    nlohmann::ordered_json e;
    e["dtype"] = safetensors_dtype(c.scalar_type());
    e["shape"] = c.sizes().vec();
    e["data_offsets"] = {offset, offset + n};
    header[name] = e;
    offset += n;
    cpu.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section starts 8-byte aligned
  uint8_t len[8];
  uint64_t hl = h.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hl >> (8 * i));
  AtomicFile f(path);
  f.write(len, 8);
  f.write(h);
  for (const auto& c : cpu)
    if (c.numel() > 0) f.write(c.data_ptr(), c.numel() * c.element_size());
  f.commit();
}

}  // namespace tandem
