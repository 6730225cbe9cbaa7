#include "tandem/collab/json_constraint.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>

#include "tandem/models/generation.h"

namespace tandem::collab {

namespace {

std::shared_ptr<SchemaNode> parse_schema_node(const nlohmann::json& s, const std::string& where, int depth) {
  auto n = std::make_shared<SchemaNode>();
  auto fail = [&](const std::string& what) { throw std::invalid_argument(where + ": " + what); };
  if (depth > 32) fail("schema nested deeper than 32 levels");
  if (!s.is_object()) fail("a schema must be a JSON object");
  // Keywords tandem's decoder honours; any other is refused (a constraint silently dropped would
  // let through output the caller's schema forbids).
  auto only = [&](std::initializer_list<const char*> allowed) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      bool ok = it.key() == "description" || it.key() == "title";
      for (const char* a : allowed) ok = ok || it.key() == a;
      if (!ok) fail("keyword \"" + it.key() + "\" is not supported here");
    }
  };
  auto count = [&](const char* key, int64_t fallback, int64_t hi) {
    if (!s.contains(key)) return fallback;
    if (!s[key].is_number_integer() || s[key].get<int64_t>() < 0 || s[key].get<int64_t>() > hi)
      fail(std::string(key) + " must be an integer in [0, " + std::to_string(hi) + "]");
    return s[key].get<int64_t>();
  };
  if (s.contains("enum")) {
    only({"enum", "type"});
    n->kind = SchemaNode::Kind::kEnum;
    if (!s["enum"].is_array()) fail("enum must be a list");
    for (const auto& o : s["enum"]) {
      if (!o.is_string() || o.get<std::string>().empty()) fail("enum options must be non-empty strings");
      n->options.push_back(o.get<std::string>());
    }
    if (n->options.empty()) fail("enum needs at least one option");
    return n;
  }
  if (!s.contains("type") || !s["type"].is_string()) fail("\"type\" must be a string (or give \"enum\")");
  const std::string type = s["type"].get<std::string>();
  if (type == "object") {
    only({"type", "properties", "required", "additionalProperties"});
    n->kind = SchemaNode::Kind::kObject;
    if (!s.contains("properties") || !s["properties"].is_object()) fail("object needs \"properties\"");
    if (s.contains("additionalProperties") && s["additionalProperties"] != false)
      fail("additionalProperties may only be false (every output has exactly the listed properties)");
    // Property order: "required" order when given (all properties are emitted), else as written.
    std::vector<std::string> order;
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail("required must be a list of property names");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) fail("required must be a list of property names");
        order.push_back(r.get<std::string>());
      }
    }
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it)
      if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
    for (const auto& k : order) {
      if (!s["properties"].contains(k)) fail("required property \"" + k + "\" is not in properties");
      n->properties.emplace_back(k, parse_schema_node(s["properties"][k], where + "/" + k, depth + 1));
    }
  } else if (type == "string") {
    only({"type", "maxLength"});
    n->kind = SchemaNode::Kind::kString;
    n->max_length = count("maxLength", 200, 100000);
  } else if (type == "integer") {
    only({"type"});
    n->kind = SchemaNode::Kind::kInteger;
  } else if (type == "boolean") {
    only({"type"});
    n->kind = SchemaNode::Kind::kBoolean;
  } else if (type == "array") {
    only({"type", "items", "minItems", "maxItems"});
    n->kind = SchemaNode::Kind::kArray;
    if (!s.contains("items")) fail("array needs \"items\"");
    n->items = parse_schema_node(s["items"], where + "/items", depth + 1);
    n->min_items = count("minItems", 0, 1000);
    n->max_items = count("maxItems", 8, 1000);
    if (n->min_items > n->max_items) fail("minItems exceeds maxItems");
  } else {
    fail("unsupported schema type \"" + type + "\" (supported: object, string, integer, boolean, array, enum)");
  }
  return n;
}

}  // namespace

std::shared_ptr<const SchemaNode> parse_json_schema(const nlohmann::json& s, const std::string& where) {
  return parse_schema_node(s, where, 0);
}

std::shared_ptr<const TokenTable> TokenTable::build(const text::Tokenizer& tok) {
  // One table per tokenizer object for the life of the process.
  static std::mutex mu;
  static std::map<const text::Tokenizer*, std::shared_ptr<const TokenTable>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(&tok);
  if (it != cache.end()) return it->second;
  auto t = std::make_shared<TokenTable>();
  const int64_t V = tok.vocab_size();
  t->text.resize(static_cast<size_t>(V));
  std::vector<uint8_t> ok(V), close(V), dig(V), end(V);
  for (int64_t v = 0; v < V; ++v) {
    const std::string s = tok.decode({v}, /*skip_special=*/true);
    t->text[static_cast<size_t>(v)] = s;
    if (s.empty()) continue;
    bool printable = true, all_digits = true;
    for (unsigned char c : s) {
      printable = printable && c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
      all_digits = all_digits && c >= '0' && c <= '9';
    }
    ok[v] = printable;
    close[v] = s[0] == '"';
    dig[v] = all_digits;
    end[v] = s[0] == ',' || s[0] == '}' || s[0] == ']' || s[0] == ' ' || s[0] == '\n';
  }
  auto mk = [&](const std::vector<uint8_t>& b) { return torch::tensor(b, torch::kUInt8).to(torch::kBool); };
  t->string_ok = mk(ok);
  t->string_close = mk(close);
  t->digits = mk(dig);
  t->number_end = mk(end);
  t->in_string = t->string_ok | t->string_close;
  t->digits_or_end = t->digits | t->number_end;
  cache[&tok] = t;
  return t;
}

JsonConstraint::JsonConstraint(std::shared_ptr<const SchemaNode> schema, std::shared_ptr<const TokenTable> table,
                               const text::Tokenizer& tok, std::shared_ptr<MaskCache> masks)
    : schema_(std::move(schema)), table_(std::move(table)), tok_(tok),
      masks_(masks ? std::move(masks) : std::make_shared<MaskCache>()) {
  stack_.push_back({schema_.get()});
  pump();
}

void JsonConstraint::emit(const std::string& lit) {
  out_ += lit;
  literal_ += lit;
}

int64_t JsonConstraint::next_forced() {
  if (pending_.empty()) return -1;
  const int64_t t = pending_.front();
  pending_.pop_front();
  return t;
}

void JsonConstraint::pump() {
  using K = SchemaNode::Kind;
  slot_ = Slot::kNone;
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    const SchemaNode& n = *f.node;
    if (n.kind == K::kObject) {
      if (!f.opened) {
        emit("{");
        f.opened = true;
      }
      if (f.index < static_cast<int64_t>(n.properties.size())) {
        const auto& p = n.properties[static_cast<size_t>(f.index)];
        emit(std::string(f.index ? ", " : "") + "\"" + p.first + "\": ");
        f.index++;
        stack_.push_back({p.second.get()});
        continue;
      }
      emit("}");
      stack_.pop_back();
      continue;
    }
    if (n.kind == K::kArray) {
      if (!f.opened) {
        emit("[");
        f.opened = true;
      }
      if (f.index >= n.max_items) {
        emit("]");
        stack_.pop_back();
        continue;
      }
      const std::string sep = f.index ? ", " : "";
      if (f.index < n.min_items) {
        emit(sep);
        f.index++;
        stack_.push_back({n.items.get()});
        continue;
      }
      // The model decides: another item (separator + the item's opening) or close.
      const K ik = n.items->kind;
      const std::string open = ik == K::kObject ? "{" : ik == K::kArray ? "[" : ik == K::kInteger ? "1" : ik == K::kBoolean ? "t" : "\"";
      alts_ = {sep + open, "]"};
      slot_ = Slot::kChoice;
      break;
    }
    if (n.kind == K::kBoolean) {
      alts_ = {"true", "false"};
      slot_ = Slot::kChoice;
      break;
    }
    if (!f.opened) {  // string, enum: opening quote; integer: nothing
      if (n.kind != K::kInteger) emit("\"");
      f.opened = true;
      slot_ = n.kind == K::kString ? Slot::kString : n.kind == K::kEnum ? Slot::kEnum : Slot::kInteger;
      slot_count_ = 0;
      enum_prefix_.clear();
      break;
    }
    // Reached again after its slot closed (closing text already emitted).
    stack_.pop_back();
  }
  if (slot_ == Slot::kChoice) {
    alt_first_.clear();
    for (const auto& a : alts_) {
      auto ids = tok_.encode(a);
      alt_first_.push_back(ids.empty() ? -1 : ids.front());
    }
  }
  if (!literal_.empty()) {
    for (int64_t id : tok_.encode(literal_)) pending_.push_back(id);
    literal_.clear();
  }
}

torch::Tensor JsonConstraint::allowed() const {
  const int64_t V = static_cast<int64_t>(table_->text.size());
  switch (slot_) {
    case Slot::kString:
      return table_->in_string;
    case Slot::kInteger:
      return slot_count_ > 0 ? table_->digits_or_end : table_->digits;
    case Slot::kEnum: {
      const SchemaNode* node = stack_.back().node;
      char addr[32];
      std::snprintf(addr, sizeof addr, "enum:%p:", static_cast<const void*>(node));
      return masks_->get(addr + enum_prefix_, [&] {
        const auto& opts = node->options;
        std::vector<uint8_t> m(static_cast<size_t>(V), 0);
        bool complete = false;
        for (const auto& o : opts) complete = complete || o == enum_prefix_;
        for (int64_t v = 0; v < V; ++v) {
          const auto& t = table_->text[static_cast<size_t>(v)];
          if (t.empty()) continue;
          if (complete && t[0] == '"') {
            m[static_cast<size_t>(v)] = 1;
            continue;
          }
          const std::string cand = enum_prefix_ + t;
          for (const auto& o : opts)
            if (o.compare(0, cand.size(), cand) == 0 && cand.size() <= o.size()) {
              m[static_cast<size_t>(v)] = 1;
              break;
            }
        }
        return torch::tensor(m, torch::kUInt8).to(torch::kBool);
      });
    }
    case Slot::kChoice: {
      std::string key = "alts";
      for (auto id : alt_first_) key += ":" + std::to_string(id);
      return masks_->get(key, [&] {
        auto m = torch::zeros({V}, torch::kBool);
        for (auto id : alt_first_)
          if (id >= 0) m[id] = true;
        return m;
      });
    }
    default:
      return masks_->get("none", [&] { return torch::zeros({V}, torch::kBool); });
  }
}

int64_t JsonConstraint::choose(int64_t token) {
  using K = SchemaNode::Kind;
  const std::string& t = table_->text.at(static_cast<size_t>(token));
  auto close_slot = [&](const std::string& closing) {
    emit(closing);
    stack_.pop_back();
    pump();
    return next_forced();
  };
  switch (slot_) {
    case Slot::kString:
      if (!t.empty() && t[0] == '"') return close_slot("\"");
      out_ += t;
      slot_count_ += static_cast<int64_t>(t.size());
      if (slot_count_ >= stack_.back().node->max_length) {  // budget reached: close after this token
        emit("\"");
        stack_.pop_back();
        pump();
      }
      return token;
    case Slot::kInteger:
      if (slot_count_ > 0 && !(t.size() && t[0] >= '0' && t[0] <= '9')) return close_slot("");
      out_ += t;
      slot_count_ += static_cast<int64_t>(t.size());
      if (slot_count_ >= 9) {
        stack_.pop_back();
        pump();
      }
      return token;
    case Slot::kEnum: {
      const auto& opts = stack_.back().node->options;
      if (!t.empty() && t[0] == '"') return close_slot("\"");
      enum_prefix_ += t;
      out_ += t;
      // Complete and not extendable: close without asking.
      bool complete = false, extendable = false;
      for (const auto& o : opts) {
        complete = complete || o == enum_prefix_;
        extendable = extendable || (o.size() > enum_prefix_.size() && o.compare(0, enum_prefix_.size(), enum_prefix_) == 0);
      }
      if (complete && !extendable) {
        emit("\"");
        stack_.pop_back();
        pump();
      }
      return token;
    }
    case Slot::kChoice: {
      size_t k = 0;
      while (k < alt_first_.size() && alt_first_[k] != token) ++k;
      if (k == alt_first_.size()) k = 0;
      Frame& f = stack_.back();
      if (f.node->kind == K::kBoolean) {
        emit(alts_[k]);
        stack_.pop_back();
      } else if (k == 1) {  // array: close
        emit("]");
        stack_.pop_back();
      } else {  // array: another item; the item emits its own opening
        emit(f.index ? ", " : "");
        f.index++;
        stack_.push_back({f.node->items.get()});
      }
      pump();
      return next_forced();
    }
    default:
      return -1;
  }
}

void JsonConstraint::minimal(const SchemaNode& n, std::string& s) const {
  using K = SchemaNode::Kind;
  switch (n.kind) {
    case K::kObject:
      s += "{";
      for (size_t i = 0; i < n.properties.size(); ++i) {
        s += (i ? ", \"" : "\"") + n.properties[i].first + "\": ";
        minimal(*n.properties[i].second, s);
      }
      s += "}";
      break;
    case K::kString: s += "\"\""; break;
    case K::kInteger: s += "0"; break;
    case K::kBoolean: s += "false"; break;
    case K::kEnum: s += "\"" + n.options.front() + "\""; break;
    case K::kArray:
      s += "[";
      for (int64_t i = 0; i < n.min_items; ++i) {
        if (i) s += ", ";
        minimal(*n.items, s);
      }
      s += "]";
      break;
  }
}

void JsonConstraint::finish_now() {
  using K = SchemaNode::Kind;
  pending_.clear();
  literal_.clear();
  // Close the innermost open slot, then every enclosing structure with minimal remaining parts.
  while (!stack_.empty()) {
    Frame& f = stack_.back();
    const SchemaNode& n = *f.node;
    if (n.kind == K::kString && f.opened) {
      out_ += "\"";
    } else if (n.kind == K::kEnum && f.opened) {
      // Complete the prefix to its first matching option.
      for (const auto& o : n.options)
        if (o.compare(0, enum_prefix_.size(), enum_prefix_) == 0) {
          out_ += o.substr(enum_prefix_.size());
          break;
        }
      out_ += "\"";
    } else if (n.kind == K::kInteger && f.opened) {
      if (slot_count_ == 0) out_ += "0";
    } else if (n.kind == K::kObject && f.opened) {
      for (size_t i = static_cast<size_t>(f.index); i < n.properties.size(); ++i) {
        out_ += (i ? ", \"" : "\"") + n.properties[i].first + "\": ";
        minimal(*n.properties[i].second, out_);
      }
      out_ += "}";
    } else if (n.kind == K::kArray && f.opened) {
      for (int64_t i = f.index; i < n.min_items; ++i) {
        if (i) out_ += ", ";
        minimal(*n.items, out_);
      }
      out_ += "]";
    } else {
      minimal(n, out_);
    }
    stack_.pop_back();
    slot_count_ = 1;  // enclosing frames are past their own slot
  }
  slot_ = Slot::kNone;
}

JsonSchemaPolicy::JsonSchemaPolicy(const text::Tokenizer& tok, const std::shared_ptr<const SchemaNode>& schema,
                                   int64_t rows, double temperature)
    : table_(TokenTable::build(tok)), temperature_(temperature), results_(static_cast<size_t>(rows)),
      cancelled_(static_cast<size_t>(rows), false) {
  auto masks = std::make_shared<MaskCache>();
  rows_.reserve(static_cast<size_t>(rows));
  for (int64_t b = 0; b < rows; ++b) rows_.emplace_back(schema, table_, tok, masks);
}

void JsonSchemaPolicy::choose(const DecodeStep& step, std::vector<TokenChoice>& choices) {
  // Rows on skeleton text take their forced token; the rest choose together: one masked argmax
  // (or draw) over a [choosers, V] block per step.
  const int64_t B = static_cast<int64_t>(rows_.size());
  std::vector<int64_t> choosers;
  std::vector<torch::Tensor> allowed;
  for (int64_t b = 0; b < B; ++b) {
    auto& r = rows_[static_cast<size_t>(b)];
    if (!step.live[static_cast<size_t>(b)]) continue;
    if (r.done()) {
      choices[static_cast<size_t>(b)].finish = true;
      continue;
    }
    const int64_t f = r.next_forced();
    if (f >= 0) {
      choices[static_cast<size_t>(b)].feed = f;
      ++results_[static_cast<size_t>(b)].tokens;
      choices[static_cast<size_t>(b)].finish = r.done();  // that was the skeleton's last token
    } else {
      choosers.push_back(b);
      allowed.push_back(r.allowed());
    }
  }
  if (choosers.empty()) return;
  const int64_t V = static_cast<int64_t>(table_->text.size());
  const float kNegInf = -std::numeric_limits<float>::infinity();
  const auto& logits = step.out.logits;
  const auto idx = torch::tensor(choosers, torch::kLong);
  const auto ok = torch::stack(allowed);  // [C, V]
  auto l = logits.select(1, -1).index_select(0, idx.to(logits.device())).narrow(1, 0, V)
               .to(torch::kCPU, torch::kFloat).masked_fill(ok.logical_not(), kNegInf);
  const auto any = ok.any(1).contiguous();
  torch::Tensor pick;
  if (is_greedy(temperature_)) {
    pick = l.argmax(1).contiguous();
  } else {
    // Rows with nothing allowed get a harmless uniform row; they are closed below.
    l = torch::where(any.unsqueeze(1), l / temperature_, torch::zeros_like(l));
    pick = torch::multinomial(torch::softmax(l, 1), 1, false, step.gen).squeeze(1).contiguous();
  }
  const int64_t* pk = pick.data_ptr<int64_t>();
  const bool* an = any.data_ptr<bool>();
  for (size_t c = 0; c < choosers.size(); ++c) {
    const int64_t b = choosers[c];
    auto& r = rows_[static_cast<size_t>(b)];
    if (!an[c]) {  // nothing allowed: close what is open
      r.finish_now();
      choices[static_cast<size_t>(b)].finish = true;
      continue;
    }
    results_[static_cast<size_t>(b)].chosen++;
    const int64_t fed = r.choose(pk[c]);  // -1: nothing to feed now (finished by that choice)
    choices[static_cast<size_t>(b)].feed = fed;
    if (fed >= 0) ++results_[static_cast<size_t>(b)].tokens;
    choices[static_cast<size_t>(b)].finish = r.done();
  }
}

void JsonSchemaPolicy::on_end(int64_t row, const std::string& reason) {
  if (reason == "cancelled") cancelled_[static_cast<size_t>(row)] = true;
  rows_[static_cast<size_t>(row)].finish_now();
}

std::vector<ConstrainedResult> JsonSchemaPolicy::results(const DecodeStats& st) {
  for (size_t b = 0; b < rows_.size(); ++b) {
    auto& o = results_[b];
    o.finish_reason = st.finish_reasons[b];
    if (!rows_[b].done()) rows_[b].finish_now();
    o.text = rows_[b].text();
    o.value = nlohmann::json::parse(o.text);  // by construction; a throw here is a bug
  }
  return results_;
}

std::vector<ConstrainedResult> generate_json(CausalLM& model, const text::Tokenizer& tok,
                                             const std::vector<std::vector<int64_t>>& prompts,
                                             const std::shared_ptr<const SchemaNode>& schema, int64_t max_new_tokens,
                                             double temperature, uint64_t seed,
                                             const std::function<bool(int64_t row)>& cancelled) {
  JsonSchemaPolicy policy(tok, schema, static_cast<int64_t>(prompts.size()), temperature);
  DecodeOptions d;
  d.max_new_tokens = max_new_tokens;
  d.pad_id = std::max<int64_t>(tok.pad_id, std::max<int64_t>(tok.eos_id, 0));
  d.seed = seed;
  d.cancelled = cancelled;
  return policy.results(generate(model, prompts, policy, d));
}

}  // namespace tandem::collab
