// The `collab_qa` recipe's options (Minions on long-document QA).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/collab/lm_client.h"
#include "tandem/collab/protocol.h"
#include "tandem/core/options.h"
#include "tandem/data/long_doc_qa.h"

namespace tandem {

struct CollabQaOptions {
  collab::PriceTable prices;
  template <class V>
  void visit(V& v) {
    v.template component<LongDocDataset>("data", "the long-document questions");
    v.template component<collab::Protocol>("protocol", "how local and remote collaborate");
    v.template component<collab::LMClient>("local", "the local LM (reads the document)");
    v.template component<collab::LMClient>("remote", "the remote LM (in minion / minions it never sees the document)");
    v.section("prices", prices, "the cost model");
  }
  TANDEM_OPTIONS(CollabQaOptions)
};

}  // namespace tandem
