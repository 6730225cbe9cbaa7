#include "tandem/moe/model_pool.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tandem/core/formats/gguf.h"

namespace fs = std::filesystem;

namespace tandem {

int64_t module_bytes(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel() * p.element_size();
  for (const auto& b : m.buffers()) n += b.numel() * b.element_size();
  return n;
}

int64_t estimate_model_bytes(const std::string& path, c10::ScalarType dtype) {
  const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
  int64_t numel = 0;
  if (fs::is_regular_file(path)) {
    gguf::GgufFile f(path);
    for (const auto& t : f.tensors()) numel += t.numel();
    return numel * elem;
  }
  // HF directory: the safetensors headers give every shape without reading weights.
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.path().extension() != ".safetensors") continue;
    std::ifstream in(e.path(), std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, '\0');
    in.read(header.data(), static_cast<std::streamsize>(n));
    const nlohmann::json table = nlohmann::json::parse(header);  // kept alive: items() is a view
    for (const auto& [k, v] : table.items()) {
      if (k == "__metadata__") continue;
      int64_t c = 1;
      for (const auto& d : v.at("shape")) c *= d.get<int64_t>();
      numel += c;
    }
  }
  return numel * elem;
}

ModelPool::ModelPool(int64_t budget_bytes, c10::Device device, c10::ScalarType dtype)
    : budget_(budget_bytes), device_(device), dtype_(dtype) {}

std::shared_ptr<PooledModel> ModelPool::acquire(const std::string& path) {
  if (auto it = loaded_.find(path); it != loaded_.end()) {
    lru_.remove(path);
    lru_.push_back(path);
    return it->second;
  }
  const int64_t need = estimate_model_bytes(path, dtype_);
  if (budget_ > 0 && need > budget_)
    throw std::runtime_error(path + ": needs " + std::to_string(need) + " bytes, more than the pool's whole budget of " +
                             std::to_string(budget_) + " (pool.memory_budget_gb)");
  // Evict idle models (no holder but the pool) until the new one fits.
  while (budget_ > 0 && resident_ + need > budget_ && !lru_.empty()) {
    std::string victim;
    for (const auto& name : lru_)
      if (loaded_[name].use_count() == 1) {
        victim = name;
        break;
      }
    if (victim.empty())
      throw std::runtime_error(path + ": does not fit the pool budget while every resident model is in use");
    unload(victim);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto pm = std::make_shared<PooledModel>();
  pm->lm = load_language_model(path, device_, dtype_);
  pm->model = pm->lm->model_ptr();
  pm->tokenizer = pm->lm->tokenizer_ptr();
  pm->bytes = module_bytes(*pm->model);
  load_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++loads_;
  resident_ += pm->bytes;
  peak_ = std::max(peak_, resident_);
  loaded_[path] = pm;
  lru_.push_back(path);
  max_models_ = std::max<int64_t>(max_models_, static_cast<int64_t>(loaded_.size()));
  return pm;
}

void ModelPool::unload(const std::string& path) {
  auto it = loaded_.find(path);
  if (it == loaded_.end()) return;
  resident_ -= it->second->bytes;
  loaded_.erase(it);
  lru_.remove(path);
}

void ModelPool::unload_all() {
  while (!lru_.empty()) unload(lru_.front());
}

}  // namespace tandem
