// tandem_fuzz: a bounded, seeded mutation fuzzer for the readers of untrusted input (GGUF,
// safetensors, tokenizer.json, YAML configs, JSON schemas). libFuzzer needs clang, which this
// project's toolchain lacks, so this is the documented fallback: a deterministic random mutator
// (byte flips, interesting integers, chunk insert/delete/duplicate, splices between seeds) over
// a corpus of real files, for a fixed time. Built with AddressSanitizer and UBSan, the target
// sources compiled in with the sanitizers (CMake option TANDEM_FUZZ_SANITIZE, on by default).
//
//   tandem_fuzz --target gguf --seeds DIR --seconds 20 [--seed 0] [--findings DIR]
//
// Every input must either load or be rejected with a *clear* error: one of tandem's error types
// (or std::runtime_error / std::invalid_argument) whose message names the input. Any other
// exception (std::out_of_range from a container, a JSON library error, std::bad_alloc, a torch
// error) is an unclear rejection: it is counted, saved under --findings, and makes the exit code
// 1. A crash ends the process (with a sanitizer report in the ASan build).
// Prints one JSON line: target, executions, accepted, rejected, unclear, seconds.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/collab/json_constraint.h"
#include "tandem/core/config.h"
#include "tandem/core/files.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/models/causal_lm.h"
#include "tandem/core/formats/gguf.h"
#include "tandem/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace tandem;

namespace {

using Bytes = std::string;

// ---- the mutator ----
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  Bytes mutate(Bytes b, const std::vector<Bytes>& corpus) {
    const int rounds = 1 + static_cast<int>(pick(4));
    for (int r = 0; r < rounds; ++r) {
      switch (pick(7)) {
        case 0:  // flip bits
          if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:  // a random byte
          if (!b.empty()) b[pick(b.size())] = static_cast<char>(pick(256));
          break;
        case 2: {  // an interesting integer, 1/2/4/8 bytes little-endian, at a random offset
          static const uint64_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff, 0x100000000ULL,
                                          0x7fffffffffffffffULL, 0xffffffffffffffffULL, 1ULL << 40, 1ULL << 62};
          const uint64_t v = vals[pick(sizeof vals / sizeof vals[0])];
          const size_t w = size_t{1} << pick(4);
          if (b.size() >= w) {
            const size_t at = pick(b.size() - w + 1);
            std::memcpy(&b[at], &v, w);
          }
          break;
        }
        case 3: {  // delete a chunk
          if (b.size() < 2) break;
          const size_t at = pick(b.size()), n = 1 + pick(std::min<size_t>(64, b.size() - at));
          b.erase(at, n);
          break;
        }
        case 4: {  // duplicate a chunk
          if (b.empty()) break;
          const size_t at = pick(b.size()), n = 1 + pick(std::min<size_t>(64, b.size() - at));
          b.insert(at, b.substr(at, n));
          break;
        }
        case 5: {  // splice in a piece of another seed
          const Bytes& o = corpus[pick(corpus.size())];
          if (o.empty() || b.empty()) break;
          const size_t from = pick(o.size()), n = 1 + pick(std::min<size_t>(256, o.size() - from));
          b.replace(pick(b.size()), n, o.substr(from, n));
          break;
        }
        case 6: {  // text: a digit run becomes an extreme number
          static const char* nums[] = {"0", "-1", "99999999999999999999", "1e308", "-0.5", "2147483648", "1000000000"};
          const size_t at = b.find_first_of("0123456789", pick(b.size() + 1));
          if (at == Bytes::npos) break;
          size_t end = at;
          while (end < b.size() && std::isdigit(static_cast<unsigned char>(b[end]))) ++end;
          b.replace(at, end - at, nums[pick(sizeof nums / sizeof nums[0])]);
          break;
        }
      }
    }
    if (pick(16) == 0 && !b.empty()) b.resize(pick(b.size()));  // truncation
    return b;
  }

 private:
  size_t pick(size_t n) { return n ? static_cast<size_t>(rng_() % n) : 0; }
  std::mt19937_64 rng_;
};

// ---- targets: each takes the input's path (written there) and parses it ----
struct Target {
  std::string file_name;                           // the input is written under this name
  std::function<void(const std::string&)> parse;   // throws on rejection
};

void touch_tensors(const SafetensorsFile& f) {
  for (const auto& [n, t] : f.tensors) (void)t.sum().item<double>();
}

std::map<std::string, Target> targets() {
  std::map<std::string, Target> t;
  t["gguf"] = {"model.gguf", [](const std::string& p) {
                 gguf::GgufFile f(p);
                 // Past the header: the model config, the weights and the vocabulary it implies.
                 auto lm = load_causal_lm(p, c10::kCPU, c10::kFloat);
                 auto tok = text::load_tokenizer(p);
                 tok->decode(tok->encode("Hello world 123"), false);
               }};
  t["safetensors"] = {"weights.safetensors", [](const std::string& p) { touch_tensors(load_safetensors(p, false)); }};
  t["config"] = {"fuzz.yaml", [](const std::string& p) {
                   const Config c = Config::load_file(p);
                   (void)c.dump();
                   for (const auto& k : c.keys()) (void)c.where(k);
                 }};
  t["tokenizer_json"] = {"tokenizer.json", [](const std::string& p) {
                           auto tok = text::load_tokenizer(fs::path(p).parent_path().string());
                           tok->decode(tok->encode("Hello world, 123 ünïcödé 😀  spaces"), false);
                         }};
  t["json_schema"] = {"schema.json", [](const std::string& p) {
                        nlohmann::json j;
                        try {
                          j = nlohmann::json::parse(read_file(p));
                        } catch (const nlohmann::json::exception& e) {  // not JSON at all: the caller's message
                          throw std::invalid_argument(p + ": not JSON: " + e.what());
                        }
                        collab::parse_json_schema(j, p);
                      }};
  return t;
}

// A rejection is clear when it is one of the error types tandem raises on purpose and its
// message names the input (its path, or its file name).
bool clear_rejection(const std::exception& e, const std::string& path) {
  const std::string msg = e.what();
  const bool ours = dynamic_cast<const ConfigError*>(&e) || dynamic_cast<const gguf::GgufError*>(&e) ||
                    dynamic_cast<const SafetensorsError*>(&e) ||
                    (dynamic_cast<const std::runtime_error*>(&e) && !dynamic_cast<const std::range_error*>(&e) &&
                     !dynamic_cast<const std::overflow_error*>(&e)) ||
                    dynamic_cast<const std::invalid_argument*>(&e);
  const bool foreign = dynamic_cast<const nlohmann::json::exception*>(&e) || dynamic_cast<const c10::Error*>(&e) ||
                       dynamic_cast<const YAML::Exception*>(&e);
  return ours && !foreign && (msg.find(path) != std::string::npos || msg.find(fs::path(path).filename().string()) != std::string::npos);
}

}  // namespace

int main(int argc, char** argv) {
  std::string target_name, seeds_dir, findings_dir;
  double seconds = 10;
  uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--target") target_name = v;
    else if (k == "--seeds") seeds_dir = v;
    else if (k == "--seconds") seconds = std::stod(v);
    else if (k == "--seed") seed = std::stoull(v);
    else if (k == "--findings") findings_dir = v;
    else {
      std::cerr << "tandem_fuzz: unknown option " << k << "\n";
      return 2;
    }
  }
  const auto all = targets();
  if (!all.count(target_name) || seeds_dir.empty()) {
    std::cerr << "usage: tandem_fuzz --target {gguf|safetensors|config|tokenizer_json|json_schema} --seeds DIR "
                 "[--seconds S] [--seed N] [--findings DIR]\n";
    return 2;
  }
  const Target& target = all.at(target_name);
  std::vector<Bytes> corpus;
  for (const auto& e : fs::directory_iterator(seeds_dir))
    if (e.is_regular_file()) corpus.push_back(read_file(e.path().string()));
  if (corpus.empty()) {
    std::cerr << "tandem_fuzz: no seed files in " << seeds_dir << "\n";
    return 2;
  }
  torch::set_num_threads(1);
  const fs::path work = fs::temp_directory_path() / ("tandem_fuzz_" + target_name + "_" + std::to_string(::getpid()));
  fs::create_directories(work);
  const std::string input = (work / target.file_name).string();
  Mutator mut(seed);
  int64_t execs = 0, accepted = 0, rejected = 0, unclear = 0;
  std::map<std::string, int64_t> unclear_kinds;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  while (elapsed() < seconds) {
    // Every seed as it is first (they must load), then mutants.
    const bool pristine = execs < static_cast<int64_t>(corpus.size());
    const Bytes data = pristine ? corpus[static_cast<size_t>(execs)] : mut.mutate(corpus[static_cast<size_t>(execs) % corpus.size()], corpus);
    {
      std::ofstream f(input, std::ios::binary | std::ios::trunc);
      f.write(data.data(), static_cast<std::streamsize>(data.size()));
    }
    ++execs;
    std::string problem;
    try {
      target.parse(input);
      ++accepted;
    } catch (const std::exception& e) {
      if (clear_rejection(e, input)) {
        ++rejected;
      } else {
        problem = std::string(typeid(e).name()) + ": " + std::string(e.what()).substr(0, 300);
      }
    } catch (...) {
      problem = "a non-std exception";
    }
    if (pristine && !problem.empty()) problem = "seed rejected: " + problem;
    if (!problem.empty()) {
      ++unclear;
      const std::string kind = problem.substr(0, 120);
      if (unclear_kinds[kind]++ == 0) {
        std::cerr << "tandem_fuzz: unclear rejection (" << target_name << "): " << problem << "\n";
        if (!findings_dir.empty()) {
          fs::create_directories(findings_dir);
          write_file_atomic((fs::path(findings_dir) / (target_name + "-" + std::to_string(execs) + ".bin")).string(), data);
        }
      }
    }
  }
  fs::remove_all(work);
  nlohmann::json out = {{"target", target_name}, {"executions", execs}, {"accepted", accepted}, {"rejected", rejected},
                        {"unclear", unclear},     {"seconds", elapsed()}, {"seeds", corpus.size()}};
  std::cout << out.dump() << std::endl;
  return unclear ? 1 : 0;
}
