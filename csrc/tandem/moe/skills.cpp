#include "tandem/moe/skills.h"

#include <algorithm>

#include "tandem/models/encoder.h"
#include "tandem/models/language_model.h"
#include "tandem/models/generation.h"
#include "tandem/models/model_paths.h"
#include "tandem/text/chat_template.h"
#include "tandem/text/tokenizer.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(moe::SkillExtractor);
}

namespace tandem::moe {
namespace {

// Sentence embeddings with a BERT-family encoder (mean pooling, normalised), truncated inputs.
class Embedder {
 public:
  Embedder(const std::string& name, const RuntimeOptions& rt)
      : path_(resolve_model_path(name)), enc_(load_encoder(path_, rt.device, torch::kFloat)), tok_(text::load_tokenizer(path_)) {}
  torch::Tensor embed(const std::vector<std::string>& texts, int64_t max_tokens = 256, int64_t batch = 32) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> out;
    for (size_t s = 0; s < texts.size(); s += batch) {
      const size_t e = std::min(texts.size(), s + static_cast<size_t>(batch));
      std::vector<std::vector<int64_t>> ids;
      size_t T = 0;
      for (size_t i = s; i < e; ++i) {
        auto x = tok_->encode(texts[i]);
        truncate_keeping_last(x, max_tokens);  // keep [CLS] ... and the closing [SEP]
        ids.push_back(std::move(x));
      }
      auto [t, m] = pad_batch(ids, std::max<int64_t>(tok_->pad_id, 0), PadSide::kRight);
      out.push_back(torch::nn::functional::normalize(enc_->embed(t, m).to(torch::kCPU, torch::kFloat),
                                                     torch::nn::functional::NormalizeFuncOptions().dim(1)));
    }
    return out.empty() ? torch::empty({0, 0}) : torch::cat(out);
  }

 private:
  std::string path_;
  std::shared_ptr<Encoder> enc_;
  std::shared_ptr<text::Tokenizer> tok_;
};

// The keys both extractors take.

std::vector<SkillTags> nearest(const torch::Tensor& queries, const torch::Tensor& vocab, int64_t n) {
  auto sims = torch::matmul(queries, vocab.t());
  auto top = sims.topk(std::min<int64_t>(n, vocab.size(0)), 1);
  std::vector<SkillTags> out(queries.size(0));
  for (int64_t i = 0; i < queries.size(0); ++i)
    for (int64_t j = 0; j < std::get<1>(top).size(1); ++j) {
      out[i].skills.push_back(std::get<1>(top)[i][j].item<int64_t>());
      out[i].scores.push_back(std::get<0>(top)[i][j].item<double>());
    }
  return out;
}

class EmbeddingSkills : public SkillExtractor {
 public:
  using Options = EmbeddingSkillsOptions;
  EmbeddingSkills(const Config& c, const RuntimeOptions& rt) : EmbeddingSkills(Options::from_config(c), rt) {}
  EmbeddingSkills(const Options& o, const RuntimeOptions& rt) : emb_(o.encoder, rt), per_instance_(o.per_instance) {
    vocab_ = o.vocabulary;
    vocab_emb_ = emb_.embed(vocab_);
  }
  std::vector<SkillTags> tag(const std::vector<std::string>& texts) override {
    return nearest(emb_.embed(texts), vocab_emb_, per_instance_);
  }

 private:
  Embedder emb_;
  int64_t per_instance_;
  torch::Tensor vocab_emb_;
};

// The paper's keyword model at small scale: an instruct LM lists the skills a question needs;
// its words are then matched to the vocabulary by embedding. Empty output falls back to the
// question's own embedding.
class KeywordLmSkills : public SkillExtractor {
 public:
  using Options = KeywordLmSkillsOptions;
  KeywordLmSkills(const Config& c, const RuntimeOptions& rt) : KeywordLmSkills(Options::from_config(c), rt) {}
  KeywordLmSkills(const Options& o, const RuntimeOptions& rt)
      : emb_(o.tagging.encoder, rt), per_instance_(o.tagging.per_instance), max_new_(o.max_new_tokens), batch_(o.batch_size) {
    vocab_ = o.tagging.vocabulary;
    vocab_emb_ = emb_.embed(vocab_);
    const std::string path = resolve_model_path(o.model);
    const auto bundle = load_language_model(path, rt.device, rt.dtype);
    lm_ = bundle->model_ptr();
    tok_ = bundle->tokenizer_ptr();
    tmpl_ = bundle->chat_ptr();
  }
  std::vector<SkillTags> tag(const std::vector<std::string>& texts) override {
    std::vector<std::string> kw(texts.size());
    SamplingOptions so;
    so.max_new_tokens = max_new_;
    for (const auto& s : {tmpl_->end_of_turn()})
      if (auto ids = tok_->encode(s); ids.size() == 1) so.stop_token_ids.push_back(ids[0]);
    if (tok_->eos_id >= 0) so.stop_token_ids.push_back(tok_->eos_id);
    for (size_t s = 0; s < texts.size(); s += batch_) {
      std::vector<std::vector<int64_t>> prompts;
      for (size_t i = s; i < std::min(texts.size(), s + static_cast<size_t>(batch_)); ++i) {
        const std::string q = texts[i].substr(0, 1200);
        prompts.push_back(tok_->encode_for_model(
            tmpl_->render({{"user", "Which areas of knowledge does this question test? Reply with two or three short keywords.\n\n" + q}})));
      }
      auto r = generate(*lm_, prompts, so, std::max<int64_t>(tok_->pad_id, 0));
      for (size_t j = 0; j < r.tokens.size(); ++j) kw[s + j] = tok_->decode(r.tokens[j], true);
    }
    std::vector<std::string> queries;
    for (size_t i = 0; i < texts.size(); ++i) queries.push_back(kw[i].find_first_not_of(" \n\t") == std::string::npos ? texts[i] : kw[i]);
    auto out = nearest(emb_.embed(queries), vocab_emb_, per_instance_);
    for (size_t i = 0; i < out.size(); ++i) out[i].keywords = kw[i];
    return out;
  }

 private:
  Embedder emb_;
  int64_t per_instance_, max_new_, batch_;
  torch::Tensor vocab_emb_;
  std::shared_ptr<CausalLM> lm_;
  std::shared_ptr<text::Tokenizer> tok_;
  std::shared_ptr<text::ChatTemplate> tmpl_;
};

TANDEM_REGISTER(SkillExtractor, "embedding", EmbeddingSkills);
TANDEM_REGISTER(SkillExtractor, "keyword_lm", KeywordLmSkills);

}  // namespace
}  // namespace tandem::moe
