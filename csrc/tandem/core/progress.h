// Progress: a terminal progress bar with rate and ETA for every long loop.
// On a terminal it redraws one line (at most ~10 times a second); when stderr is not a
// terminal it stays quiet and prints one summary line at the end. TANDEM_PROGRESS=0/1 forces.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tandem {

class Progress {
 public:
  /// `total` <= 0 means unknown (no percentage or ETA).
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Advances by `n` and sets the text shown after the bar (e.g. "loss=0.31").
  void update(int64_t n = 1, const std::string& postfix = "");
  void set_postfix(const std::string& postfix);
  /// Draws the final state and a newline (idempotent; the destructor calls it).
  void finish();

  int64_t count() const { return count_; }
  double elapsed_seconds() const;
  /// The line as it would be drawn now (used by tests).
  std::string render() const;
  /// Whether bars draw live (stderr is a terminal, or TANDEM_PROGRESS=1).
  static bool live_enabled();

 private:
  std::string label_, unit_, postfix_;
  int64_t total_, count_ = 0;
  bool live_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// "1:02:03" or "02:03".
std::string format_duration(double seconds);

}  // namespace tandem
