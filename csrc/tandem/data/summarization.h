// Readers of the summarisation datasets: XSum (id, document, summary) and CNN/DailyMail (id,
// article, highlights). Plain records; the SPA task (data/generation_tasks) adapts them.
#pragma once

#include <string>
#include <vector>

#include "tandem/data/jsonl.h"

namespace tandem {

struct SummaryRecord {
  std::string id, document, summary;
};

/// XSum JSONL: fields id, document, summary.
std::vector<SummaryRecord> read_xsum(const std::string& path, const JsonlOptions& opts = {});

/// CNN/DailyMail JSONL: fields id, article and exactly one reference field, read per record:
///   `highlights`           (official validation; sentences ending " .\n", flattened to ".\n"),
///   `highlights_tokenized` (official test, PTB-tokenized; detokenized, one sentence per line),
///   `highlights_cleaned`   (the shared train file: its host stripped each line's final period;
///                           the period is put back so targets look like the other splits').
/// A record with none of them, or with two, is an error naming the file and line.
std::vector<SummaryRecord> read_cnn_dailymail(const std::string& path, const JsonlOptions& opts = {});

/// Undoes PTB-style tokenisation ("Locke 's" -> "Locke's", "` word '" -> "'word'") and puts
/// one sentence per line (" . " separators), as ROUGE-Lsum expects.
std::string detokenize_ptb(const std::string& text);

}  // namespace tandem
