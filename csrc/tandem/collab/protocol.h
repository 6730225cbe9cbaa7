// Local-remote protocols over one long-document question, picked by `protocol.type`:
//   remote_only  the remote reads the whole document (the quality and cost reference)
//   local_only   the local model reads it alone
//   minion       the remote, which never sees the document, chats with the local, which does
//   minions      the remote writes jobs; the local runs every job on every chunk (batched,
//                JSON-constrained outputs); abstentions are filtered; the remote answers or
//                starts another round with what it learnt
// Every exchange goes to a Transcript; every token to a CostMeter.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/collab/lm_client.h"
#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/data/long_doc_qa.h"

namespace tandem::collab {

/// Dollars per million tokens (remote input / output; local ones default to 0).
/// `prices:` dollars per million tokens (defaults: GPT-4o list prices, Nov 2024; local free).
struct PriceTable {
  double remote_input = 2.5, remote_output = 10.0, local_input = 0, local_output = 0;
  template <class V>
  void visit(V& v) {
    v.field("remote_input_per_mtok", remote_input, "remote prompt tokens, $ per million", Range{0.0, 1e6});
    v.field("remote_output_per_mtok", remote_output, "remote completion tokens, $ per million", Range{0.0, 1e6});
    v.field("local_input_per_mtok", local_input, "local prompt tokens, $ per million", Range{0.0, 1e6});
    v.field("local_output_per_mtok", local_output, "local completion tokens, $ per million", Range{0.0, 1e6});
  }
  TANDEM_OPTIONS(PriceTable)
};

struct CostMeter {
  int64_t remote_calls = 0, remote_prompt = 0, remote_completion = 0;
  int64_t local_calls = 0, local_prompt = 0, local_completion = 0;
  void remote(const ChatResponse& r);
  void local(const ChatResponse& r);
  double dollars(const PriceTable& p) const;
  nlohmann::json to_json(const PriceTable& p) const;
};

/// Who said what, in order: {"who", "kind", "content", ...extra}.
struct Transcript {
  nlohmann::json events = nlohmann::json::array();
  void add(const std::string& who, const std::string& kind, const std::string& content, nlohmann::json extra = {});
};

/// Renders a saved transcript (the JSON the experiment writes per example) as Markdown.
std::string transcript_markdown(const nlohmann::json& t);

struct ProtocolClients {
  LMClient* local = nullptr;
  LMClient* remote = nullptr;
};

class Protocol {
 public:
  static constexpr const char* kRegistryKind = "collab.protocol";
  using Factory = std::unique_ptr<Protocol>(const Config&);
  virtual ~Protocol() = default;
  /// The final answer to `ex`. Throws (RemoteError, ...) when it cannot finish; the caller
  /// records the failure in the transcript and goes on with the next example.
  virtual std::string answer(const LongDocExample& ex, ProtocolClients& c, Transcript& t, CostMeter& m) = 0;
  /// Which clients the protocol uses (the experiment builds only those).
  virtual bool uses_local() const { return true; }
  virtual bool uses_remote() const { return true; }
};

/// Job-output schema of MinionS' local workers (explanation, citation, answer).
nlohmann::json job_output_schema();

}  // namespace tandem::collab

namespace tandem {
TANDEM_DECLARE_REGISTRY(collab::Protocol);
}  // namespace tandem

namespace tandem::collab {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct ProtocolOptions {
  int64_t max_doc_chars = 40000, answer_tokens = 48, seed = 0;
  template <class V>
  void visit(V& v) {
    v.field("max_document_chars", max_doc_chars, "a longer document is cut to this many characters", Positive{});
    v.field("answer_tokens", answer_tokens, "budget of the final answer", Positive{});
    v.field("seed", seed, "sampling seed of every request", NonNegative{});
  }
  TANDEM_OPTIONS(ProtocolOptions)
};

struct MinionOptions {
  ProtocolOptions common;
  int64_t rounds = 3, local_tokens = 96;
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("rounds", rounds, "remote turns before it must answer", Positive{});
    v.field("local_tokens", local_tokens, "budget of each local reply", Positive{});
  }
  TANDEM_OPTIONS(MinionOptions)
};

struct MinionSOptions {
  ProtocolOptions common;
  int64_t chunk_chars = 3000, jobs_per_round = 2, samples_per_job = 1, rounds = 2, max_findings = 12, job_tokens = 120;
  double sample_temperature = 0.7;
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("chunk_chars", chunk_chars, "the document is cut into chunks of at most this many characters", Positive{});
    v.field("jobs_per_round", jobs_per_round, "jobs the remote writes per round", Positive{});
    v.field("samples_per_job", samples_per_job, "local samples of each job on each chunk", Positive{});
    v.field("rounds", rounds, "decompose / execute / aggregate rounds at most", Positive{});
    v.field("max_findings", max_findings, "local findings the remote reads per round", Positive{});
    v.field("job_tokens", job_tokens, "budget of each local job output", Positive{});
    v.field("sample_temperature", sample_temperature, "local temperature when samples_per_job > 1", Range{0.0, 2.0});
  }
  TANDEM_OPTIONS(MinionSOptions)
};

}  // namespace tandem::collab
