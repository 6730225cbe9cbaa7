// GGUF files (llama.cpp's model format): metadata, tensor directory, and tensors dequantized
// to a torch dtype. The file is memory-mapped; nothing is read outside it, and every malformed
// input raises GgufError naming the file and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <ATen/core/Tensor.h>

#include "tandem/core/formats/gguf_quants.h"

namespace tandem::gguf {

class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One metadata value: integers (signed or not), floats, bools, strings, or arrays of them.
struct Value {
  std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<Value>> v;
  uint32_t type = 0;  ///< the GGUF value type id as stored
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  ///< ggml order: ne[0] is the fastest-varying (row length)
  uint32_t type = 0;
  uint64_t offset = 0;      ///< from the start of the data section
  uint64_t nbytes = 0;
  /// Shape in torch order (ne reversed).
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
  int64_t numel() const;
};

class GgufFile {
 public:
  /// Opens and validates `path` (header, metadata, tensor directory, bounds).
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, Value>& metadata() const { return meta_; }
  const std::vector<TensorInfo>& tensors() const { return infos_; }

  bool has(const std::string& key) const { return meta_.count(key) > 0; }
  /// Typed metadata access; errors name the file, the key and the expected type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;

  bool has_tensor(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  /// The tensor dequantized into `dtype` (float32 first, then cast), torch shape order.
  at::Tensor load(const std::string& name, c10::ScalarType dtype) const;
  /// The stored bytes, as a uint8 view of the mapping (no copy).
  at::Tensor raw(const std::string& name) const;

 private:
  std::string path_;
  uint32_t version_ = 0;
  std::map<std::string, Value> meta_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
  std::shared_ptr<void> map_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t data_start_ = 0;
};

}  // namespace tandem::gguf
