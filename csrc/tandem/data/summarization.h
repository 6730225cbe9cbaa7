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

/// CNN/DailyMail JSONL: fields id, article and either `highlights` (sentences ending " .\n",
/// flattened to ".\n") or, with `tokenized_highlights`, the PTB-tokenized
/// `highlights_tokenized` (detokenized here, one sentence per line).
std::vector<SummaryRecord> read_cnn_dailymail(const std::string& path, bool tokenized_highlights,
                                              const JsonlOptions& opts = {});

/// Undoes PTB-style tokenisation ("Locke 's" -> "Locke's", "` word '" -> "'word'") and puts
/// one sentence per line (" . " separators), as ROUGE-Lsum expects.
std::string detokenize_ptb(const std::string& text);

}  // namespace tandem
