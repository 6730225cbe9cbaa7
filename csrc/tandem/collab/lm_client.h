// LM clients: how a protocol talks to a model, picked by `type:`
//   local    a tandem model in this process (batched; JSON-schema constrained when asked)
//   openai   any OpenAI-compatible chat endpoint over HTTP (timeouts, retries with backoff)
//   replay   wraps another client: records every exchange to a JSONL file, or replays it
//            offline bit-exactly (a request missing from the file is an error naming it)
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/models/causal_lm.h"
#include "tandem/text/chat_template.h"
#include "tandem/text/tokenizer.h"

namespace tandem::collab {

using text::ChatMessage;

struct ChatRequest {
  std::vector<ChatMessage> messages;
  int64_t max_tokens = 256;
  double temperature = 0.0;
  double top_p = 1.0;          ///< nucleus sampling (1 = off)
  uint64_t seed = 0;
  nlohmann::json json_schema;  ///< null: free text; else the reply must be JSON of this schema
  /// Set (by a server) when the reply is no longer wanted: decoding of this row stops at the
  /// next step with finish reason "cancelled". Not part of key().
  std::shared_ptr<const std::atomic<bool>> cancel;
  /// The request as OpenAI's chat-completions body (model name filled by the client).
  nlohmann::json to_openai(const std::string& model) const;
  /// A stable key of everything that determines the reply (record / replay).
  std::string key() const;
};

struct ChatResponse {
  std::string content;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::string finish_reason;
  int attempts = 1;  ///< HTTP attempts it took (1 = no retry)
};

/// A failed exchange after the client's retry budget; protocols fail that example with it.
class RemoteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class LMClient {
 public:
  static constexpr const char* kRegistryKind = "collab.lm_client";
  using Factory = std::unique_ptr<LMClient>(const Config&, const RuntimeOptions&);
  virtual ~LMClient() = default;
  /// Replies to a batch of requests (in order). Throws RemoteError when one cannot be had.
  virtual std::vector<ChatResponse> chat(const std::vector<ChatRequest>& batch) = 0;
  ChatResponse chat_one(const ChatRequest& r) { return chat({r}).at(0); }
  virtual std::string describe() const = 0;
};

/// A tandem model with its tokenizer and chat template: what `local` clients and
/// `tandem serve` run. chat() and complete() may run on several threads at once (the server's
/// lanes do): the model keeps no per-call state and the tokenizer's caches are locked.
class LocalEngine {
 public:
  LocalEngine(const std::string& model, const RuntimeOptions& rt, const std::string& chat_template = "auto");
  std::vector<ChatResponse> chat(const std::vector<ChatRequest>& batch);
  /// Plain completion of raw prompts (the /v1/completions endpoint); `settings` gives the
  /// sampling options and the cancel flag (its messages are not used).
  std::vector<ChatResponse> complete(const std::vector<std::string>& prompts, const ChatRequest& settings);
  int64_t count_tokens(const std::string& text) const;
  /// Tokens of the rendered chat prompt of `r` (what chat() feeds the model).
  int64_t prompt_tokens(const ChatRequest& r) const;
  /// Positions the model can attend to (prompt + generated tokens must fit).
  int64_t context_length() const { return lm_->config().max_positions; }
  const std::string& name() const { return name_; }
  text::Tokenizer& tokenizer() { return *tok_; }
  CausalLM& model() { return *lm_; }

 private:
  std::string name_;
  std::shared_ptr<CausalLM> lm_;
  std::shared_ptr<text::Tokenizer> tok_;
  std::shared_ptr<text::ChatTemplate> tmpl_;
  std::vector<int64_t> stop_ids_;
};

}  // namespace tandem::collab

namespace tandem {
TANDEM_DECLARE_REGISTRY(collab::LMClient);
}  // namespace tandem

namespace tandem::collab {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct LocalClientOptions {
  std::string model, chat_template = "auto";
  int64_t max_batch = 8;
  template <class V>
  void visit(V& v) {
    v.required("model", model, "a short name under $TANDEM_MODELS, a .gguf file or an HF directory");
    v.field("chat_template", chat_template, "auto (the checkpoint's own template), or a family: llama3, chatml, gemma, llama2, mistral, phi3, plain");
    v.field("max_batch", max_batch, "requests decoded together", Positive{});
  }
  void check(const Config& c) const { text::check_chat_template_name(c, "chat_template", chat_template); }
  TANDEM_OPTIONS(LocalClientOptions)
};

struct OpenAIClientOptions {
  std::string base_url, model = "default", api_key_env;
  double timeout_s = 60.0, backoff_s = 0.5, max_retry_after_s = 120.0;
  int64_t max_retries = 3, concurrency = 4;
  bool send_schema = true;
  template <class V>
  void visit(V& v) {
    v.required("base_url", base_url, "the endpoint, e.g. http://127.0.0.1:8765/v1 (tandem serve) or a hosted API");
    v.field("model", model, "the model name sent in each request");
    v.field("api_key_env", api_key_env, "environment variable holding the API key (\"\" = none)");
    v.field("timeout_s", timeout_s, "per-request timeout", Positive{});
    v.field("max_retries", max_retries, "retries of a failed or rate-limited request", NonNegative{});
    v.field("backoff_s", backoff_s, "first retry delay (doubles per retry)", Range{0.0, 60.0});
    v.field("max_retry_after_s", max_retry_after_s, "longest Retry-After honoured; a longer one fails the request",
            Range{0.0, 3600.0});
    v.field("concurrency", concurrency, "requests in flight at once", Positive{});
    v.field("send_schema", send_schema, "send JSON schemas as response_format (false: describe them in the prompt)");
  }
  TANDEM_OPTIONS(OpenAIClientOptions)
};

struct ReplayClientOptions {
  std::string path, mode = "auto";
  template <class V>
  void visit(V& v) {
    v.required("path", path, "the JSONL file of recorded requests and replies");
    v.field("mode", mode, "record (always ask inner), replay (file only), auto (file, else ask inner and record)",
            OneOf{{"record", "replay", "auto"}});
    v.template component<LMClient>("inner", "the client asked when the file has no answer (record and auto)");
  }
  TANDEM_OPTIONS(ReplayClientOptions)
};

}  // namespace tandem::collab
