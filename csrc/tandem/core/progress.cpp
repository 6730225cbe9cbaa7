#include "tandem/core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tandem {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

bool Progress::live_enabled() {
  if (const char* env = std::getenv("TANDEM_PROGRESS"); env && *env) return std::strcmp(env, "0") != 0;
  return isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), live_(live_enabled()),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::render() const {
  const double el = elapsed_seconds();
  const double rate = el > 0 ? count_ / el : 0.0;
  char rate_s[48];
  if (rate >= 1.0 || rate == 0.0)
    std::snprintf(rate_s, sizeof rate_s, "%.2f %s/s", rate, unit_.c_str());
  else
    std::snprintf(rate_s, sizeof rate_s, "%.2f s/%s", 1.0 / rate, unit_.c_str());
  std::string line = label_ + " ";
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(count_) / total_);
    const int width = 24, filled = static_cast<int>(frac * width);
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));
    line += std::string(pct) + " |" + std::string(filled, '#') + std::string(width - filled, ' ') + "| ";
    line += std::to_string(count_) + "/" + std::to_string(total_);
    const double eta = rate > 0 ? (total_ - count_) / rate : NAN;
    line += " [" + format_duration(el) + "<" + format_duration(eta) + ", " + rate_s + "]";
  } else {
    line += std::to_string(count_) + " " + unit_ + " [" + format_duration(el) + ", " + rate_s + "]";
  }
  if (!postfix_.empty()) line += " " + postfix_;
  return line;
}

void Progress::update(int64_t n, const std::string& postfix) {
  count_ += n;
  if (!postfix.empty()) postfix_ = postfix;
  if (!live_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && count_ != total_) return;
  last_draw_ = now;
  std::fprintf(stderr, "\r%s\033[K", render().c_str());
  std::fflush(stderr);
}

void Progress::set_postfix(const std::string& postfix) { postfix_ = postfix; }

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (live_)
    std::fprintf(stderr, "\r%s\033[K\n", render().c_str());
  else if (!(std::getenv("TANDEM_PROGRESS") && std::strcmp(std::getenv("TANDEM_PROGRESS"), "0") == 0))
    std::fprintf(stderr, "%s\n", render().c_str());
  std::fflush(stderr);
}

}  // namespace tandem
