// text: chat templates rendered by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/peft/state_cache.h"
#include "tandem/text/chat_template.h"
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
                                      {"unknown text.chat_template 'nope' (known: chatml, gemma, llama2, plain)"});
}

}  // namespace
