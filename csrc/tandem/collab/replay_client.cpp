// The `replay` client: wraps another client (`inner:`) and stores every exchange in a JSONL
// file (mode: record), answers only from that file, offline (mode: replay), or replays what it
// has and records the rest (mode: auto). Replies are stored verbatim, so a replayed run is
// bit-exact. Lines are appended and flushed one by one: a crash loses no finished exchange.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "tandem/collab/lm_client.h"
#include "tandem/data/jsonl.h"

namespace fs = std::filesystem;

namespace tandem::collab {
namespace {

class ReplayClient : public LMClient {
 public:
  using Options = ReplayClientOptions;
  ReplayClient(const Config& cfg, const RuntimeOptions& rt) : ReplayClient(Options::from_config(cfg), cfg, rt) {}
  ReplayClient(const Options& o, const Config& cfg, const RuntimeOptions& rt) : path_(o.path), mode_(o.mode), rt_(rt) {
    if (mode_ != "record" && fs::exists(path_))
      read_jsonl(path_, [&](const nlohmann::json& rec, size_t) {
        ChatResponse r;
        const auto& j = rec.at("response");
        r.content = j.at("content");
        r.prompt_tokens = j.at("prompt_tokens");
        r.completion_tokens = j.at("completion_tokens");
        r.finish_reason = j.at("finish_reason");
        store_[rec.at("key").get<std::string>()] = r;
      });
    if (mode_ == "replay" && !fs::exists(path_))
      throw std::invalid_argument(cfg.where("path") + ": replay file " + path_ + " does not exist");
    if (mode_ != "replay") inner_ = create<LMClient>(cfg.at("inner"), rt);
    else cfg.set_aside("inner", "replay mode answers from the file; the inner client is never built");
  }

  std::vector<ChatResponse> chat(const std::vector<ChatRequest>& batch) override {
    std::vector<ChatResponse> out(batch.size());
    std::vector<size_t> missing;
    std::vector<ChatRequest> ask;
    for (size_t i = 0; i < batch.size(); ++i) {
      auto it = store_.find(batch[i].key());
      if (mode_ != "record" && it != store_.end()) {
        out[i] = it->second;
        continue;
      }
      if (mode_ == "replay")
        throw RemoteError("replay: no recorded reply for request " + batch[i].key() + " in " + path_ +
                          " (record it with mode: record or auto)");
      missing.push_back(i);
      ask.push_back(batch[i]);
    }
    if (ask.empty()) return out;
    auto got = inner_->chat(ask);
    std::lock_guard<std::mutex> lock(mu_);
    if (!fs::path(path_).parent_path().empty()) fs::create_directories(fs::path(path_).parent_path());
    std::ofstream f(path_, std::ios::app);
    for (size_t j = 0; j < ask.size(); ++j) {
      out[missing[j]] = got[j];
      store_[ask[j].key()] = got[j];
      nlohmann::json line = {{"key", ask[j].key()},
                             {"request", ask[j].to_openai("")},
                             {"response",
                              {{"content", got[j].content},
                               {"prompt_tokens", got[j].prompt_tokens},
                               {"completion_tokens", got[j].completion_tokens},
                               {"finish_reason", got[j].finish_reason}}}};
      f << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      f.flush();
    }
    return out;
  }
  std::string describe() const override { return "replay(" + mode_ + "):" + path_ + (inner_ ? " <- " + inner_->describe() : ""); }

 private:
  std::string path_, mode_;
  RuntimeOptions rt_;
  std::unique_ptr<LMClient> inner_;
  std::unordered_map<std::string, ChatResponse> store_;
  std::mutex mu_;
};
TANDEM_REGISTER(LMClient, "replay", ReplayClient);

}  // namespace
}  // namespace tandem::collab
