#include "tandem/collab/protocol.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace tandem {
TANDEM_DEFINE_REGISTRY(collab::Protocol);
}

namespace tandem::collab {

void CostMeter::remote(const ChatResponse& r) {
  remote_calls++;
  remote_prompt += r.prompt_tokens;
  remote_completion += r.completion_tokens;
}
void CostMeter::local(const ChatResponse& r) {
  local_calls++;
  local_prompt += r.prompt_tokens;
  local_completion += r.completion_tokens;
}
double CostMeter::dollars(const PriceTable& p) const {
  return (remote_prompt * p.remote_input + remote_completion * p.remote_output + local_prompt * p.local_input +
          local_completion * p.local_output) / 1e6;
}
nlohmann::json CostMeter::to_json(const PriceTable& p) const {
  return {{"remote_calls", remote_calls},   {"remote_prompt_tokens", remote_prompt}, {"remote_completion_tokens", remote_completion},
          {"local_calls", local_calls},     {"local_prompt_tokens", local_prompt},   {"local_completion_tokens", local_completion},
          {"dollars", dollars(p)}};
}

void Transcript::add(const std::string& who, const std::string& kind, const std::string& content, nlohmann::json extra) {
  nlohmann::json e = {{"who", who}, {"kind", kind}, {"content", content}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) e[it.key()] = it.value();
  events.push_back(std::move(e));
}

std::string transcript_markdown(const nlohmann::json& t) {
  std::ostringstream o;
  o << "# " << t.value("id", "example") << " (" << t.value("protocol", "") << ")\n\n";
  o << "**Question:** " << t.value("question", "") << "\n\n";
  if (t.contains("references")) {
    o << "**References:**";
    for (const auto& r : t["references"]) o << " `" << r.get<std::string>() << "`";
    o << "\n\n";
  }
  for (const auto& e : t.value("events", nlohmann::json::array())) {
    o << "### " << e.value("who", "?") << " - " << e.value("kind", "") << "\n\n";
    if (e.contains("chunk")) o << "_chunk " << e["chunk"].dump() << "_";
    if (e.contains("job")) o << " _job: " << e["job"].get<std::string>() << "_";
    if (e.contains("chunk") || e.contains("job")) o << "\n\n";
    std::string c = e.value("content", "");
    if (c.size() > 1500) c = c.substr(0, 1500) + " [...]";
    o << "```\n" << c << "\n```\n\n";
  }
  o << "**Prediction:** " << t.value("prediction", "") << "  \n";
  if (t.contains("f1")) o << "**F1:** " << t["f1"].dump() << "  \n";
  if (t.contains("error") && !t["error"].is_null()) o << "**Error:** " << t["error"].get<std::string>() << "  \n";
  if (t.contains("cost")) o << "**Cost:** `" << t["cost"].dump() << "`\n";
  return o.str();
}

nlohmann::json job_output_schema() {
  return {{"type", "object"},
          {"properties",
           {{"explanation", {{"type", "string"}, {"maxLength", 120}}},
            {"citation", {{"type", "string"}, {"maxLength", 100}}},
            {"answer", {{"type", "string"}, {"maxLength", 60}}}}},
          {"required", {"explanation", "citation", "answer"}}};
}

namespace {

std::string clip(const std::string& s, int64_t chars) {
  return static_cast<int64_t>(s.size()) <= chars ? s : s.substr(0, static_cast<size_t>(chars));
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An answer that says "nothing here" in one of the ways small models do.
bool abstains(const std::string& a) {
  std::string s = lower(a);
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '.' || c == '"' || c == '\''; }), s.end());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  static const char* kNone[] = {"", "none", "null", "n/a", "na", "not found", "unknown", "no answer", "not mentioned",
                                "not specified", "not available"};
  for (const char* n : kNone)
    if (s == n) return true;
  return false;
}

std::string qa_prompt(const std::string& doc, const std::string& q) {
  return "Document:\n" + doc + "\n\nQuestion: " + q + "\nAnswer the question in a few words, using the document.";
}

// The keys every protocol takes.

// One side reads the whole document and answers: remote_only (the quality and cost reference)
// or local_only.
template <bool kRemote>
class OneSide : public Protocol {
 public:
  using Options = ProtocolOptions;
  explicit OneSide(const Config& c) : k_(Options::from_config(c)) {}
  bool uses_local() const override { return !kRemote; }
  bool uses_remote() const override { return kRemote; }
  std::string answer(const LongDocExample& ex, ProtocolClients& c, Transcript& t, CostMeter& m) override {
    const char* who = kRemote ? "remote" : "local";
    ChatRequest r;
    r.messages = {{"user", qa_prompt(clip(ex.document, k_.max_doc_chars), ex.question)}};
    r.max_tokens = k_.answer_tokens;
    r.seed = k_.seed;
    t.add(who, "request", "[document: " + std::to_string(std::min<int64_t>(ex.document.size(), k_.max_doc_chars)) +
                              " chars]\nQuestion: " + ex.question);
    auto res = (kRemote ? c.remote : c.local)->chat_one(r);
    kRemote ? m.remote(res) : m.local(res);
    t.add(who, "answer", res.content, {{"attempts", res.attempts}});
    return res.content;
  }

 private:
  ProtocolOptions k_;
};
using RemoteOnly = OneSide<true>;
using LocalOnly = OneSide<false>;
TANDEM_REGISTER(Protocol, "remote_only", RemoteOnly);
TANDEM_REGISTER(Protocol, "local_only", LocalOnly);

// Minion: the remote asks, the local answers from the document; the remote decides each turn
// whether to ask again or answer (JSON-constrained), and must answer after `rounds` turns.
class Minion : public Protocol {
 public:
  using Options = MinionOptions;
  explicit Minion(const Config& c) : Minion(Options::from_config(c)) {}
  explicit Minion(const Options& o) : k_(o.common), rounds_(o.rounds), local_tokens_(o.local_tokens) {}
  std::string answer(const LongDocExample& ex, ProtocolClients& c, Transcript& t, CostMeter& m) override {
    std::string history;
    const nlohmann::json turn_schema = {{"type", "object"},
                                        {"properties",
                                         {{"decision", {{"enum", {"ask", "answer"}}}},
                                          {"message", {{"type", "string"}, {"maxLength", 200}}}}},
                                        {"required", {"decision", "message"}}};
    for (int64_t round = 1;; ++round) {
      const bool last = round > rounds_;
      ChatRequest q;
      q.seed = k_.seed;
      q.max_tokens = 96;
      std::string sys =
          "You must answer a question about a document you cannot see. A small assistant can read it and answer "
          "your questions about it.\nQuestion: " + ex.question + "\n";
      if (!history.empty()) sys += "\nConversation so far:\n" + history;
      if (last) {
        q.messages = {{"user", sys + "\nGive the final answer to the question in a few words."}};
        q.json_schema = {{"type", "object"}, {"properties", {{"answer", {{"type", "string"}, {"maxLength", 120}}}}}, {"required", {"answer"}}};
      } else {
        q.messages = {{"user", sys + "\nEither ask the assistant one short question (decision \"ask\") or, if you "
                                     "know enough, give the final answer (decision \"answer\")."}};
        q.json_schema = turn_schema;
      }
      auto rr = c.remote->chat_one(q);
      m.remote(rr);
      auto j = nlohmann::json::parse(rr.content, nullptr, false);
      if (j.is_discarded() || !j.is_object()) throw RemoteError("minion: the remote's reply is not the requested JSON: " + clip(rr.content, 200));
      if (last || j.value("decision", "") == "answer") {
        const std::string a = last ? j.value("answer", "") : j.value("message", "");
        t.add("remote", "final answer", a, {{"round", round}});
        return a;
      }
      const std::string ask = j.value("message", "");
      t.add("remote", "question", ask, {{"round", round}});
      ChatRequest l;
      l.seed = k_.seed;
      l.max_tokens = local_tokens_;
      l.messages = {{"user", "Document:\n" + clip(ex.document, k_.max_doc_chars) + "\n\n" + ask + "\nAnswer briefly from the document."}};
      auto lr = c.local->chat_one(l);
      m.local(lr);
      t.add("local", "reply", lr.content, {{"round", round}});
      history += "You asked: " + ask + "\nAssistant: " + clip(lr.content, 400) + "\n";
    }
  }

 private:
  ProtocolOptions k_;
  int64_t rounds_, local_tokens_;
};
TANDEM_REGISTER(Protocol, "minion", Minion);

// MinionS: decompose (remote writes jobs) -> execute (local: every job x chunk x sample, in
// batches, JSON outputs) -> filter (drop abstentions) -> aggregate (remote answers or asks for
// another round, carrying what it learnt).
class MinionS : public Protocol {
 public:
  using Options = MinionSOptions;
  explicit MinionS(const Config& c) : MinionS(Options::from_config(c)) {}
  explicit MinionS(const Options& o)
      : k_(o.common),
        chunk_chars_(o.chunk_chars),
        jobs_per_round_(o.jobs_per_round),
        samples_(o.samples_per_job),
        rounds_(o.rounds),
        max_findings_(o.max_findings),
        job_tokens_(o.job_tokens),
        temperature_(o.sample_temperature) {}

  std::string answer(const LongDocExample& ex, ProtocolClients& c, Transcript& t, CostMeter& m) override {
    const auto chunks = chunk_text(ex.document, chunk_chars_);
    t.add("system", "chunks", std::to_string(chunks.size()) + " chunks of <= " + std::to_string(chunk_chars_) + " chars");
    std::string learnt;
    const nlohmann::json jobs_schema = {
        {"type", "object"},
        {"properties", {{"jobs", {{"type", "array"}, {"items", {{"type", "string"}, {"maxLength", 150}}}, {"minItems", 1}, {"maxItems", jobs_per_round_}}}}},
        {"required", {"jobs"}}};
    const nlohmann::json decide_schema = {{"type", "object"},
                                          {"properties",
                                           {{"decision", {{"enum", {"answer", "more"}}}},
                                            {"answer", {{"type", "string"}, {"maxLength", 120}}}}},
                                          {"required", {"decision", "answer"}}};
    for (int64_t round = 1; round <= rounds_; ++round) {
      // 1. Decompose.
      ChatRequest d;
      d.seed = k_.seed + static_cast<uint64_t>(round);
      d.max_tokens = 160;
      d.json_schema = jobs_schema;
      d.messages = {{"user", "A document you cannot see is split into " + std::to_string(chunks.size()) +
                                 " chunks. Small workers read each chunk and follow your instructions.\nQuestion: " + ex.question +
                                 (learnt.empty() ? "" : "\nWhat the workers found so far:\n" + learnt) +
                                 "\nWrite up to " + std::to_string(jobs_per_round_) +
                                 " short instructions for the workers that would find the answer."}};
      auto dr = c.remote->chat_one(d);
      m.remote(dr);
      auto dj = nlohmann::json::parse(dr.content, nullptr, false);
      if (dj.is_discarded() || !dj.contains("jobs") || !dj["jobs"].is_array())
        throw RemoteError("minions: the remote's job list is not the requested JSON: " + clip(dr.content, 200));
      std::vector<std::string> jobs;
      for (const auto& j : dj["jobs"])
        if (j.is_string() && !j.get<std::string>().empty()) jobs.push_back(j.get<std::string>());
      if (jobs.empty()) jobs.push_back("Find information that answers: " + ex.question);
      t.add("remote", "jobs", dr.content, {{"round", round}});

      // 2. Execute: every job on every chunk, `samples` times, as one batched call. Chunk-major,
      // so the jobs over one chunk land in the same local batch and share its prefill.
      std::vector<ChatRequest> batch;
      std::vector<std::pair<size_t, size_t>> where;  // (job, chunk)
      for (size_t ch = 0; ch < chunks.size(); ++ch)
        for (size_t j = 0; j < jobs.size(); ++j)
          for (int64_t s = 0; s < samples_; ++s) {
            ChatRequest r;
            r.max_tokens = job_tokens_;
            r.json_schema = job_output_schema();
            r.seed = k_.seed + static_cast<uint64_t>(s);
            r.temperature = s == 0 ? 0.0 : temperature_;
            r.messages = {{"user", "Text:\n" + chunks[ch] + "\n\nTask: " + jobs[j] + "\nQuestion: " + ex.question +
                                       "\nReply in JSON. If the text does not contain it, answer \"none\"."}};
            batch.push_back(std::move(r));
            where.emplace_back(j, ch);
          }
      auto outs = c.local->chat(batch);
      // 3. Filter.
      std::vector<std::string> findings;
      for (size_t i = 0; i < outs.size(); ++i) {
        m.local(outs[i]);
        auto o = nlohmann::json::parse(outs[i].content, nullptr, false);
        const std::string ans = (!o.is_discarded() && o.is_object()) ? o.value("answer", "") : "";
        const bool keep = !abstains(ans);
        t.add("local", keep ? "job output" : "job output (abstained, filtered)", outs[i].content,
              {{"round", round}, {"job", jobs[where[i].first]}, {"chunk", where[i].second}});
        if (keep && static_cast<int64_t>(findings.size()) < max_findings_)
          findings.push_back("- chunk " + std::to_string(where[i].second) + ": " + clip(ans, 80) +
                             (o.value("citation", "").empty() ? "" : " (quote: \"" + clip(o.value("citation", ""), 100) + "\")"));
      }
      for (const auto& f : findings) learnt += f + "\n";
      if (findings.empty()) learnt += "- (round " + std::to_string(round) + ": no worker found anything)\n";
      // 4. Aggregate: answer, or another round (the last round must answer).
      ChatRequest a;
      a.seed = k_.seed;
      a.max_tokens = 96;
      a.json_schema = decide_schema;
      const bool last = round == rounds_;
      a.messages = {{"user", "Question: " + ex.question + "\nWhat workers found in the document:\n" + learnt +
                                 (last ? "\nGive the final answer in a few words (decision \"answer\")."
                                       : "\nIf this answers the question, give the answer (decision \"answer\"); otherwise "
                                         "decision \"more\" for another round.")}};
      auto ar = c.remote->chat_one(a);
      m.remote(ar);
      auto aj = nlohmann::json::parse(ar.content, nullptr, false);
      if (aj.is_discarded() || !aj.is_object()) throw RemoteError("minions: the remote's decision is not the requested JSON: " + clip(ar.content, 200));
      t.add("remote", "aggregate", ar.content, {{"round", round}, {"findings", findings.size()}});
      if (last || aj.value("decision", "") == "answer") return aj.value("answer", "");
    }
    return "";
  }

 private:
  ProtocolOptions k_;
  int64_t chunk_chars_, jobs_per_round_, samples_, rounds_, max_findings_, job_tokens_;
  double temperature_;
};
TANDEM_REGISTER(Protocol, "minions", MinionS);

}  // namespace
}  // namespace tandem::collab
