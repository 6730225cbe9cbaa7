// safetensors: read (memory-mapped, zero-copy) and write, in Hugging Face's layout.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. Every malformed input raises SafetensorsError
// naming the file and the problem; nothing is read out of bounds.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace tandem {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SafetensorsFile {
  /// Tensors in file order. When memory-mapped they are CPU views of the (private,
  /// copy-on-write) mapping and keep it alive.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  /// Tensor by name; throws SafetensorsError naming the file if absent.
  const at::Tensor& at(const std::string& name) const;
  bool contains(const std::string& name) const;
  std::string path;
};

/// Loads every tensor of `path`. With `mmap` (default) tensors alias the mapped file.
SafetensorsFile load_safetensors(const std::string& path, bool mmap = true);

/// Writes `tensors` (any device; made contiguous on the CPU) atomically to `path`.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// safetensors dtype code ("F32", "BF16", ...) of a torch dtype; throws for unsupported ones.
std::string safetensors_dtype(c10::ScalarType t);

}  // namespace tandem
