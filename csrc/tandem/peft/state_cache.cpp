#include "tandem/peft/state_cache.h"

#include <algorithm>
#include <filesystem>

#include "tandem/core/files.h"
#include "tandem/core/formats/safetensors.h"

namespace fs = std::filesystem;

namespace tandem {

StateCache::StateCache(std::string dir, int64_t budget_bytes) : dir_(std::move(dir)), budget_(budget_bytes) {
  fs::create_directories(dir_);
  remove_stale_temporaries(dir_);
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") bytes_ += static_cast<int64_t>(e.file_size());
}

std::string StateCache::path_of(const std::string& key) const { return (fs::path(dir_) / (key + ".safetensors")).string(); }

bool StateCache::contains(const std::string& key) const {
  std::error_code ec;
  return fs::exists(path_of(key), ec);
}

std::optional<NamedTensors> StateCache::lookup(const std::string& key) {
  const std::string p = path_of(key);
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    ++misses;
    return std::nullopt;
  }
  try {
    SafetensorsFile f = load_safetensors(p, /*mmap=*/true);
    fs::last_write_time(p, fs::file_time_type::clock::now(), ec);  // recency for LRU eviction
    ++hits;
    return f.tensors;
  } catch (const SafetensorsError&) {
    // A damaged entry (disk trouble; writes themselves are atomic) is dropped and recomputed.
    fs::remove(p, ec);
    ++misses;
    return std::nullopt;
  }
}

bool StateCache::put(const std::string& key, const NamedTensors& tensors) {
  int64_t size = 0;
  for (const auto& [n, t] : tensors) size += static_cast<int64_t>(t.numel() * t.element_size());
  if (budget_ <= 0 || size > budget_) return false;
  evict_to(budget_ - size);
  const std::string p = path_of(key);
  std::error_code ec;
  if (fs::exists(p, ec)) bytes_ -= static_cast<int64_t>(fs::file_size(p, ec));
  save_safetensors(p, tensors);
  bytes_ += static_cast<int64_t>(fs::file_size(p, ec));
  return true;
}

void StateCache::evict_to(int64_t target) {
  if (bytes_ <= target) return;
  std::vector<std::pair<fs::file_time_type, fs::path>> entries;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") entries.emplace_back(e.last_write_time(), e.path());
  std::sort(entries.begin(), entries.end());
  for (const auto& [t, p] : entries) {
    if (bytes_ <= target) break;
    std::error_code ec;
    const auto sz = static_cast<int64_t>(fs::file_size(p, ec));
    if (fs::remove(p, ec)) {
      bytes_ -= sz;
      ++evictions;
    }
  }
}

}  // namespace tandem
