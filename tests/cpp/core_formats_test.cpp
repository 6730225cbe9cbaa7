// core/formats: safetensors read and written by hand, corrupt and truncated files refused cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <torch/torch.h>

#include "tandem/core/files.h"
#include "tandem/core/formats/safetensors.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file assembled by hand from the format's definition.
std::string hand_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

TEST(Safetensors, HandWrittenFileLoads) {
  TempDir d;
  float vals[3] = {1.0f, -2.5f, 3.25f};
  int64_t ids[2] = {7, -9};
  std::string data(reinterpret_cast<char*>(vals), 12);
  data += std::string(reinterpret_cast<char*>(ids), 16);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
      R"("ids":{"dtype":"I64","shape":[1,2],"data_offsets":[12,28]}})";
  const std::string p = d.write("h.safetensors", hand_file(header, data));
  for (bool mmap : {true, false}) {
    auto f = load_safetensors(p, mmap);
    EXPECT_EQ(f.metadata.at("format"), "pt");
    EXPECT_TRUE(torch::equal(f.at("w"), torch::tensor({1.0f, -2.5f, 3.25f})));
    EXPECT_TRUE(torch::equal(f.at("ids"), torch::tensor({{int64_t{7}, int64_t{-9}}})));
    EXPECT_EQ(f.tensors[0].first, "w");  // header order kept
  }
}

TEST(Safetensors, RoundTripIsBitExactForEveryDtype) {
  TempDir d;
  torch::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> ts = {
      {"f32", torch::randn({3, 5})},
      {"f16", torch::randn({4}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2}, torch::kDouble)},
      {"i64", torch::randint(-1000, 1000, {6}, torch::kLong)},
      {"i32", torch::randint(-1000, 1000, {6}, torch::kInt)},
      {"i8", torch::randint(-100, 100, {5}, torch::kChar)},
      {"u8", torch::randint(0, 255, {5}, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
      {"noncontig", torch::arange(12, torch::kFloat).reshape({3, 4}).t()},
  };
  const std::string p = d.file("r.safetensors");
  save_safetensors(p, ts, {{"k", "v"}});
  auto f = load_safetensors(p);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    const auto& got = f.at(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    auto a = t.contiguous(), b = got.contiguous();
    EXPECT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()), 0) << name;
  }
  EXPECT_EQ(f.metadata.at("k"), "v");
  // Header is padded so the data section is 8-byte aligned.
  const std::string raw = read_file(p);
  uint64_t hl = 0;
  std::memcpy(&hl, raw.data(), 8);
  EXPECT_EQ((8 + hl) % 8, 0u);
}

TEST(Safetensors, MappedTensorsAreCopyOnWrite) {
  TempDir d;
  const std::string p = d.file("c.safetensors");
  save_safetensors(p, {{"x", torch::ones({4})}});
  {
    auto f = load_safetensors(p);
    at::Tensor x = f.at("x");
    x.mul_(5);  // allowed, and must not reach the file
    EXPECT_EQ(x.sum().item<float>(), 20.0f);
  }
  EXPECT_EQ(load_safetensors(p).at("x").sum().item<float>(), 4.0f);
}

TEST(Safetensors, TensorOutlivesItsFileObject) {
  TempDir d;
  const std::string p = d.file("l.safetensors");
  save_safetensors(p, {{"x", torch::arange(1000, torch::kFloat)}});
  at::Tensor x = load_safetensors(p).at("x");  // the mapping is held by the tensor
  EXPECT_EQ(x[999].item<float>(), 999.0f);
}

struct Corrupt {
  const char* name;
  std::string bytes;
  const char* expect;
};

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  TempDir d;
  const std::string good_hdr = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data(8, '\0');
  std::vector<Corrupt> cases = {
      {"short", "abc", "shorter than the 8-byte header length"},
      {"hlen_too_big", le64(1u << 30) + good_hdr + data, "exceeds the file size"},
      {"bad_json", hand_file("{\"w\": [1,", data), "header is not valid JSON"},
      {"not_object", hand_file("[1,2,3]", ""), "header is not a JSON object"},
      {"truncated_data", hand_file(good_hdr, std::string(4, '\0')), "fall outside the 4-byte data section"},
      {"wrong_size", hand_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data),
       "8 bytes for F32 shape of 3 elements (12 bytes expected)"},
      {"bad_dtype", hand_file(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data),
       "unsupported dtype 'Q4'"},
      {"missing_fields", hand_file(R"({"w":{"dtype":"F32"}})", data), "lacks dtype, shape or data_offsets"},
      {"gap", hand_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data),
       "does not start where the previous one ends"},
      {"trailing", hand_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", data),
       "4 trailing bytes after the last tensor"},
      {"negative_shape", hand_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data),
       "shape entries must be integers >= 0"},
      {"bad_metadata", hand_file(R"({"__metadata__":{"a":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
       "__metadata__ value 'a' is not a string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = d.write(std::string(c.name) + ".safetensors", c.bytes);
    expect_error<SafetensorsError>([&] { load_safetensors(p); }, {p + ": not a valid safetensors file", c.expect});
  }
  expect_error<SafetensorsError>([&] { load_safetensors(d.file("absent.safetensors")); }, {"cannot open"});
}

TEST(Safetensors, EveryTruncationOfAValidFileIsRejectedCleanly) {
  TempDir d;
  const std::string p = d.file("v.safetensors");
  save_safetensors(p, {{"a", torch::randn({5})}, {"b", torch::randn({3, 2}).to(torch::kBFloat16)}});
  const std::string raw = read_file(p);
  for (size_t n = 0; n < raw.size(); ++n) {
    const std::string q = d.write("t.safetensors", raw.substr(0, n));
    EXPECT_THROW(load_safetensors(q), SafetensorsError) << "prefix of " << n << " bytes";
  }
}

}  // namespace
