// text: chat templates rendered by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/peft/state_cache.h"
#include "tandem/text/chat_template.h"
#include "tandem/text/regex.h"
#include "tandem/train/trainer.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

TEST(ChatTemplate, RendersEachFamilyByHand) {
  struct NoTok : text::Tokenizer {
    std::vector<int64_t> encode(const std::string&) const override { return {}; }
    std::string decode(const std::vector<int64_t>&, bool) const override { return ""; }
    int64_t vocab_size() const override { return 0; }
    int64_t token_to_id(const std::string& t) const override { return t == "<start_of_turn>" ? 5 : -1; }
    std::string id_to_token(int64_t) const override { return ""; }
  } tok;
  const std::vector<text::ChatMessage> msgs{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  EXPECT_EQ(text::make_chat_template("chatml", tok)->render(msgs),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  // "auto" finds Gemma's marker; Gemma folds the system text into the first user turn.
  EXPECT_EQ(text::make_chat_template("auto", tok)->render(msgs),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n");
  expect_error<std::invalid_argument>([&] { text::make_chat_template("nope", tok); },
                                      {"unknown text.chat_template 'nope' (known: chatml, gemma, llama2, llama3, mistral, phi3, plain)"});
  // Llama 3 trims every turn; Phi-3 leaves text as written (both by hand from their formats).
  EXPECT_EQ(text::make_chat_template("llama3", tok)->render({{"user", " Hi \n"}}),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(text::make_chat_template("phi3", tok)->render({{"system", ""}, {"user", " Hi"}}), "<|user|>\n Hi<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, DetectsTheFamilyOfACheckpointTemplate) {
  EXPECT_EQ(text::detect_chat_family("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}{{ '<|eot_id|>' }}"), "llama3");
  EXPECT_EQ(text::detect_chat_family("{{'<|im_start|>' + m.role}}"), "chatml");
  EXPECT_EQ(text::detect_chat_family("<start_of_turn>user"), "gemma");
  EXPECT_EQ(text::detect_chat_family("<|user|>{{c}}<|end|><|assistant|>"), "phi3");
  EXPECT_EQ(text::detect_chat_family("[INST] <<SYS>>"), "llama2");
  EXPECT_EQ(text::detect_chat_family("[INST] {{c}} [/INST]"), "mistral");
  EXPECT_EQ(text::detect_chat_family("### User: {{c}}"), "");
}

TEST(Regex, FindsMatchesAsTokenizersDoes) {
  // Oniguruma semantics, by hand: \p{N}{1,3} takes digits three at a time; an empty match
  // advances one character (UTF-8 aware), so "é" is not split inside.
  text::Regex digits("\\p{N}{1,3}", "test");
  EXPECT_EQ(digits.find_all("a12345b"), (std::vector<std::pair<size_t, size_t>>{{1, 4}, {4, 6}}));
  text::Regex empty("x*", "test");
  EXPECT_EQ(empty.find_all("\xC3\xA9x"), (std::vector<std::pair<size_t, size_t>>{{0, 0}, {2, 3}, {3, 3}}));
  EXPECT_EQ(text::Regex::literal("a.b", "test").replace_all("a.b axb a.b", "-"), "- axb -");
  expect_error<std::runtime_error>([] { text::Regex("(open", "tok.json"); }, {"tok.json: regex (open does not compile"});
}

}  // namespace
