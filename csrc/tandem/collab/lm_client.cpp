#include "tandem/collab/lm_client.h"

#include <algorithm>
#include <map>

#include "tandem/collab/json_constraint.h"
#include "tandem/core/hash.h"
#include "tandem/models/generation.h"
#include "tandem/models/language_model.h"
#include "tandem/models/model_paths.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(collab::LMClient);
}

namespace tandem::collab {

nlohmann::json ChatRequest::to_openai(const std::string& model) const {
  nlohmann::json msgs = nlohmann::json::array();
  for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  nlohmann::json j = {{"model", model}, {"messages", msgs}, {"max_tokens", max_tokens}, {"temperature", temperature},
                      {"seed", seed}};
  if (top_p != 1.0) j["top_p"] = top_p;  // only when set, so keys of earlier recordings stay valid
  if (!json_schema.is_null())
    j["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "reply"}, {"schema", json_schema}, {"strict", true}}}};
  return j;
}

std::string ChatRequest::key() const {
  const std::string body = to_openai("").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a(body)));
  return buf;
}

LocalEngine::LocalEngine(const std::string& model, const RuntimeOptions& rt, const std::string& chat_template) : name_(model) {
  const auto bundle = load_language_model(resolve_model_path(model), rt.device, rt.dtype, chat_template);
  lm_ = bundle->model_ptr();
  tok_ = bundle->tokenizer_ptr();
  tmpl_ = bundle->chat_ptr();
  stop_ids_ = bundle->stop_ids();
}

int64_t LocalEngine::count_tokens(const std::string& text) const { return static_cast<int64_t>(tok_->encode(text).size()); }

int64_t LocalEngine::prompt_tokens(const ChatRequest& r) const {
  return static_cast<int64_t>(tok_->encode_for_model(tmpl_->render(r.messages)).size());
}

namespace {

// The per-row cancel hook of a group of requests (rows index into `batch` through `rows`).
std::function<bool(int64_t)> cancel_hook(const std::vector<ChatRequest>& batch, const std::vector<size_t>& rows) {
  bool any = false;
  for (size_t i : rows) any = any || batch[i].cancel != nullptr;
  if (!any) return {};
  return [&batch, &rows](int64_t b) {
    const auto& c = batch[rows[static_cast<size_t>(b)]].cancel;
    return c && c->load();
  };
}

}  // namespace

std::vector<ChatResponse> LocalEngine::chat(const std::vector<ChatRequest>& batch) {
  std::vector<ChatResponse> out(batch.size());
  // Rows that share (schema, sampling) decode together; each group is one batched generation.
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& r = batch[i];
    groups[r.json_schema.dump() + "|" + std::to_string(r.max_tokens) + "|" + std::to_string(r.temperature) + "|" +
           std::to_string(r.top_p) + "|" + std::to_string(r.seed)]
        .push_back(i);
  }
  for (const auto& [key, rows] : groups) {
    const ChatRequest& first = batch[rows.front()];
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i : rows) prompts.push_back(tok_->encode_for_model(tmpl_->render(batch[i].messages)));
    if (!first.json_schema.is_null()) {
      auto schema = parse_json_schema(first.json_schema, "json_schema");
      if (first.top_p != 1.0) throw std::invalid_argument("top_p is not supported with a json_schema response_format");
      auto res = generate_json(*lm_, *tok_, prompts, schema, first.max_tokens, first.temperature, first.seed,
                               cancel_hook(batch, rows));
      for (size_t j = 0; j < rows.size(); ++j)
        out[rows[j]] = {res[j].text, static_cast<int64_t>(prompts[j].size()), res[j].tokens, res[j].finish_reason, 1};
    } else {
      SamplingOptions so;
      so.max_new_tokens = first.max_tokens;
      so.temperature = first.temperature;
      so.top_p = first.top_p;
      so.seed = first.seed;
      so.stop_token_ids = stop_ids_;
      so.cancelled = cancel_hook(batch, rows);
      auto g = generate(*lm_, prompts, so, std::max<int64_t>(tok_->pad_id, 0));
      for (size_t j = 0; j < rows.size(); ++j)
        out[rows[j]] = {tok_->decode(g.tokens[j], true), static_cast<int64_t>(prompts[j].size()),
                        static_cast<int64_t>(g.tokens[j].size()), g.finish_reasons[j], 1};
    }
  }
  return out;
}

std::vector<ChatResponse> LocalEngine::complete(const std::vector<std::string>& texts, const ChatRequest& settings) {
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& t : texts) prompts.push_back(tok_->encode_for_model(t));
  SamplingOptions so;
  so.max_new_tokens = settings.max_tokens;
  so.temperature = settings.temperature;
  so.top_p = settings.top_p;
  so.seed = settings.seed;
  so.stop_token_ids = stop_ids_;
  if (settings.cancel) so.cancelled = [c = settings.cancel](int64_t) { return c->load(); };
  auto g = generate(*lm_, prompts, so, std::max<int64_t>(tok_->pad_id, 0));
  std::vector<ChatResponse> out;
  for (size_t j = 0; j < texts.size(); ++j)
    out.push_back({tok_->decode(g.tokens[j], true), static_cast<int64_t>(prompts[j].size()),
                   static_cast<int64_t>(g.tokens[j].size()), g.finish_reasons[j], 1});
  return out;
}

namespace {

// A tandem model in this process. Batches of more than max_batch rows are split.
class LocalClient : public LMClient {
 public:
  using Options = LocalClientOptions;
  LocalClient(const Config& cfg, const RuntimeOptions& rt) : LocalClient(Options::from_config(cfg), rt) {}
  LocalClient(const Options& o, const RuntimeOptions& rt) : engine_(o.model, rt, o.chat_template), max_batch_(o.max_batch) {}
  std::vector<ChatResponse> chat(const std::vector<ChatRequest>& batch) override {
    std::vector<ChatResponse> out;
    for (size_t s = 0; s < batch.size(); s += static_cast<size_t>(max_batch_)) {
      std::vector<ChatRequest> part(batch.begin() + static_cast<std::ptrdiff_t>(s),
                                    batch.begin() + static_cast<std::ptrdiff_t>(std::min(batch.size(), s + static_cast<size_t>(max_batch_))));
      auto r = engine_.chat(part);
      out.insert(out.end(), r.begin(), r.end());
    }
    return out;
  }
  std::string describe() const override { return "local:" + engine_.name(); }

 private:
  LocalEngine engine_;
  int64_t max_batch_;
};
TANDEM_REGISTER(LMClient, "local", LocalClient);

}  // namespace
}  // namespace tandem::collab
