// Files: atomic writes (temporary file + fsync + rename) for every artifact, and a run log.
// A reader never sees a half-written file under its final name, even after SIGKILL.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace tandem {

/// Writes `path` atomically: data goes to a hidden temporary beside it, is flushed to disk,
/// then renamed over `path`. Creates parent directories. Throws std::runtime_error naming the file.
void write_file_atomic(const std::string& path, std::string_view data);

/// Streaming form: write() as much as needed, then commit(). Destroyed uncommitted, it removes
/// its temporary and leaves any previous `path` untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

/// Removes temporaries a killed writer left in `dir` (names ".*.tmp-<pid>"); returns how many.
int remove_stale_temporaries(const std::string& dir);

std::string read_file(const std::string& path);

/// An exclusive lock on a directory while a run uses it: `<dir>/.lock` holds an flock(2) (so a
/// killed holder releases it at once) and the holder's pid. Throws std::runtime_error naming
/// the directory and the pid when another process holds it.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

/// An append-only log: each line reaches the file in one write(2), so a kill never leaves a
/// partial line. Optionally echoes to stderr.
class RunLog {
 public:
  RunLog() = default;
  explicit RunLog(const std::string& path, bool echo = true);
  ~RunLog();
  void open(const std::string& path, bool echo = true);
  void line(const std::string& text);

 private:
  int fd_ = -1;
  bool echo_ = true;
  std::mutex mu_;
};

}  // namespace tandem
