// JSON-schema constrained decoding: a schema subset (object with ordered required properties,
// string with maxLength, integer, boolean, enum of strings, array with minItems/maxItems) drives
// a per-row state machine. The machine emits the JSON skeleton itself (forced tokens) and lets
// the model choose only inside free slots (string bodies, digits, enum values, array
// continue/close, true/false) under a vocabulary mask, so every output parses, even from a
// 135M-parameter model. Decision tokens (closing a string, ending a number, choosing between
// alternatives) are read from the model's logits but never fed back; the skeleton text is.
#pragma once

#include <deque>
#include <map>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/models/generation.h"
#include "tandem/text/tokenizer.h"

namespace tandem::collab {

struct SchemaNode {
  enum class Kind { kObject, kString, kInteger, kBoolean, kEnum, kArray };
  Kind kind = Kind::kString;
  std::vector<std::pair<std::string, std::shared_ptr<SchemaNode>>> properties;  ///< object, in order
  std::shared_ptr<SchemaNode> items;                                             ///< array
  int64_t max_length = 200;                                                      ///< string, in characters
  int64_t min_items = 0, max_items = 8;                                          ///< array
  std::vector<std::string> options;                                              ///< enum
};

/// Parses the supported JSON-schema subset; anything else is an error naming `where` and the path.
std::shared_ptr<const SchemaNode> parse_json_schema(const nlohmann::json& schema, const std::string& where);

/// Facts about every token the constraint needs, computed once per tokenizer.
struct TokenTable {
  std::vector<std::string> text;  ///< decoded text (special tokens: empty)
  torch::Tensor string_ok;        ///< [V] bool: printable ASCII, no '"' or '\\'
  torch::Tensor string_close;     ///< [V] bool: text starts with '"'
  torch::Tensor digits;           ///< [V] bool: all decimal digits
  torch::Tensor number_end;       ///< [V] bool: starts with ',', '}', ']', ' ' or a newline
  torch::Tensor in_string;        ///< string_ok | string_close: what a string body may take
  torch::Tensor digits_or_end;    ///< digits | number_end: a started integer's next token
  static std::shared_ptr<const TokenTable> build(const text::Tokenizer& tok);
};

/// Vocabulary masks of enum prefixes and alternative sets, built once and shared by the rows of
/// one generation: a mask over a 49K vocabulary costs more than the step's own bookkeeping.
class MaskCache {
 public:
  /// The mask stored under `key`, built by `make` the first time.
  template <typename Make>
  const torch::Tensor& get(const std::string& key, Make make) {
    auto it = masks_.find(key);
    if (it == masks_.end()) it = masks_.emplace(key, make()).first;
    return it->second;
  }

 private:
  std::map<std::string, torch::Tensor> masks_;
};

/// One row's constraint state.
class JsonConstraint {
 public:
  JsonConstraint(std::shared_ptr<const SchemaNode> schema, std::shared_ptr<const TokenTable> table,
                 const text::Tokenizer& tok, std::shared_ptr<MaskCache> masks = nullptr);
  /// The next skeleton token to feed, or -1 when the model must choose (or the row is done).
  int64_t next_forced();
  /// Allowed tokens for the model's choice now: [V] bool, shared (do not modify).
  torch::Tensor allowed() const;
  /// Applies the model's choice; returns the token to feed now, or -1 (feed next_forced(), or done).
  int64_t choose(int64_t token);
  bool done() const { return stack_.empty() && pending_.empty(); }
  /// Closes every open structure with minimal values (out of budget); the text still parses.
  void finish_now();
  const std::string& text() const { return out_; }

 private:
  enum class Slot { kNone, kString, kInteger, kEnum, kChoice };
  struct Frame {
    const SchemaNode* node;
    int64_t index = 0;
    bool opened = false;
  };
  void pump();  // emits skeleton until the next free slot or the end
  void emit(const std::string& lit);
  void minimal(const SchemaNode& n, std::string& s) const;

  std::shared_ptr<const SchemaNode> schema_;
  std::shared_ptr<const TokenTable> table_;
  const text::Tokenizer& tok_;
  std::shared_ptr<MaskCache> masks_;
  std::vector<Frame> stack_;
  std::deque<int64_t> pending_;
  std::string out_, literal_, enum_prefix_;
  Slot slot_ = Slot::kNone;
  int64_t slot_count_ = 0;
  std::vector<std::string> alts_;       // kChoice: the literal of each alternative
  std::vector<int64_t> alt_first_;      // kChoice: each alternative's first token
};

struct ConstrainedResult {
  std::string text;        ///< always valid JSON of the schema
  nlohmann::json value;    ///< the parsed value
  int64_t tokens = 0;      ///< tokens fed (skeleton and model-chosen)
  int64_t chosen = 0;      ///< tokens the model chose (content and decisions)
  std::string finish_reason;  ///< "stop" (schema complete), "length" or "cancelled" (closed early)
};

/// The constraint as a generate() policy: one schema, one JsonConstraint per row; greedy
/// (temperature 0) or sampled among the allowed tokens.
class JsonSchemaPolicy : public NextTokenPolicy {
 public:
  JsonSchemaPolicy(const text::Tokenizer& tok, const std::shared_ptr<const SchemaNode>& schema, int64_t rows,
                   double temperature);
  void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) override;
  void on_end(int64_t row, const std::string& reason) override;
  /// Each row's JSON (closed with minimal values where it ran out), after generate() returned.
  std::vector<ConstrainedResult> results(const DecodeStats& stats);

 private:
  std::shared_ptr<const TokenTable> table_;
  double temperature_;
  std::vector<JsonConstraint> rows_;
  std::vector<ConstrainedResult> results_;
  std::vector<bool> cancelled_;
};

/// Batched constrained generation: one schema for all rows, greedy (temperature 0) or sampled.
/// `cancelled(row)`, asked before each step, closes that row early (finish reason "cancelled").
std::vector<ConstrainedResult> generate_json(CausalLM& model, const text::Tokenizer& tok,
                                             const std::vector<std::vector<int64_t>>& prompts,
                                             const std::shared_ptr<const SchemaNode>& schema, int64_t max_new_tokens,
                                             double temperature = 0.0, uint64_t seed = 0,
                                             const std::function<bool(int64_t row)>& cancelled = {});

}  // namespace tandem::collab
