// SentencePiece tokenizer.model files (Llama 2, Mistral v1-v7, Gemma), read and run by the
// sentencepiece library itself (Debian's libsentencepiece), so ids are exactly what the
// `sentencepiece` package gives. BOS is added before every text, as Llama's and Mistral's
// tokenizers do, unless tokenizer_config.json beside the file says otherwise.
#include <filesystem>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include "tandem/core/files.h"
#include "tandem/text/tokenizer.h"

namespace fs = std::filesystem;

namespace tandem::text {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) throw std::runtime_error(path + ": not a SentencePiece model (" + status.ToString() + ")");
    bos_id = sp_.bos_id();
    eos_id = sp_.eos_id();
    pad_id = sp_.pad_id();
    if (bos_id >= 0) prefix_ids = {bos_id};
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    // Control pieces written in the text ("<s>", "[INST]" in v3+) are ids of their own, as in
    // transformers and mistral-common: the text is split on them before SentencePiece runs.
    std::vector<int64_t> out;
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      int64_t hit = -1;
      size_t len = 0;
      if (text[i] == '<' || text[i] == '[')
        for (const auto& [piece, id] : controls_)
          if (piece.size() > len && text.compare(i, piece.size(), piece) == 0) hit = id, len = piece.size();
      if (hit < 0) {
        ++i;
        continue;
      }
      encode_plain(text.substr(start, i - start), out);
      out.push_back(hit);
      i = start = i + len;
    }
    encode_plain(text.substr(start), out);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out;
    std::vector<int> run;
    auto flush = [&] {
      if (!run.empty()) out += sp_.DecodeIds(run);
      run.clear();
    };
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        throw std::out_of_range("decode: token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocab_size()));
      if (sp_.IsControl(static_cast<int>(id))) {  // SentencePiece decodes these to nothing
        flush();
        if (!skip_special) out += sp_.IdToPiece(static_cast<int>(id));
        continue;
      }
      run.push_back(static_cast<int>(id));
    }
    flush();
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  int64_t token_to_id(const std::string& t) const override {
    const int id = sp_.PieceToId(t);
    return id == sp_.unk_id() && t != sp_.IdToPiece(sp_.unk_id()) ? -1 : id;
  }
  std::string id_to_token(int64_t id) const override {
    return id >= 0 && id < vocab_size() ? sp_.IdToPiece(static_cast<int>(id)) : std::string();
  }

  void index_controls() {
    for (int i = 0; i < sp_.GetPieceSize(); ++i)
      if (sp_.IsControl(i) && !sp_.IdToPiece(i).empty() && (sp_.IdToPiece(i)[0] == '<' || sp_.IdToPiece(i)[0] == '['))
        controls_.emplace_back(sp_.IdToPiece(i), i);
  }

 private:
  void encode_plain(const std::string& text, std::vector<int64_t>& out) const {
    if (text.empty()) return;
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw std::runtime_error(path_ + ": " + status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }

  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::pair<std::string, int64_t>> controls_;
};

std::unique_ptr<Tokenizer> from_model_file(const TokenizerSource& src) {
  auto tok = std::make_unique<SentencePieceTokenizer>(src.path);
  tok->index_controls();
  const fs::path cfg = fs::path(src.path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg)) {
    nlohmann::json c;
    try {
      c = nlohmann::json::parse(read_file(cfg.string()));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(cfg.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean() && !c["add_bos_token"].get<bool>()) tok->prefix_ids.clear();
    if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean() && c["add_eos_token"].get<bool>()) tok->suffix_ids = {tok->eos_id};
    if (c.contains("legacy") && c["legacy"].is_boolean() && !c["legacy"].get<bool>())
      throw std::runtime_error(cfg.string() + ": legacy = false (transformers' non-legacy SentencePiece handling) is not supported "
                                              "for tokenizer.model; use the directory's tokenizer.json");
    if (c.contains("chat_template") && c["chat_template"].is_string()) tok->chat_template = c["chat_template"].get<std::string>();
  }
  return tok;
}

}  // namespace

TANDEM_REGISTER_FUNCTION(Tokenizer, "model/sentencepiece", from_model_file);

}  // namespace tandem::text
