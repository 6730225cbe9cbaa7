#include "tandem/experiments/explain.h"

#include <functional>
#include <optional>
#include <sstream>
#include <vector>

#include "tandem/core/runtime.h"
#include "tandem/experiments/experiment.h"

namespace tandem {
namespace {

// The YAML node at dotted `path` under `root`, if the config has one.
std::optional<YAML::Node> find(const YAML::Node& root, const std::string& path) {
  YAML::Node n;
  n.reset(root);
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!n.IsMap()) return std::nullopt;
    const YAML::Node& parent = n;
    const YAML::Node child = parent[part];  // const access: never inserts
    if (!child.IsDefined()) return std::nullopt;
    n.reset(child);
  }
  return n;
}

std::string value_text(const std::optional<YAML::Node>& found) {
  if (!found) return "";
  const YAML::Node& n = *found;
  if (!n.IsDefined() || n.IsNull()) return "";
  if (n.IsScalar()) return n.Scalar().empty() ? "\"\"" : n.Scalar();
  if (n.IsSequence() && n.size() > 0 && n[0].IsMap()) return std::to_string(n.size()) + " items";
  YAML::Emitter e;
  e << YAML::Flow << n;
  std::string s = e.c_str();
  for (auto& ch : s)
    if (ch == '\n') ch = ' ';
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

std::string cell(const std::string& s) {  // a Markdown table cell: one line, '|' escaped
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

struct Row {
  std::string key, type, def, value, doc;
};

// Rows of the component `kind`/`name` whose node is at `prefix` (with its dot).
void add_component(std::vector<Row>& rows, const YAML::Node& root, const std::string& kind, const std::string& name,
                   const std::string& prefix) {
  const auto docs = OptionCatalog::find(kind, name);
  if (!docs) {
    rows.push_back({prefix + "*", "", "", "", "(" + kind + " '" + name + "' declares no options)"});
    return;
  }
  for (const auto& d : *docs) {
    const std::string key = prefix + d.key;
    if (d.type == "section" || d.type == "list") {
      rows.push_back({key, d.type, "", d.type == "list" ? value_text(find(root, key)) : "", d.doc});
      continue;
    }
    if (d.component_kind.empty()) {
      rows.push_back({key, d.type, d.default_value, value_text(find(root, key)), d.doc});
      continue;
    }
    // A nested component: its type as the config picks it, then its own options.
    const auto t = find(root, key + ".type");
    const std::string chosen = t && t->IsScalar() ? t->Scalar() : d.default_value;
    rows.push_back({key + ".type", d.component_kind + " name", d.default_value, value_text(t), d.doc});
    if (chosen != "(required)") add_component(rows, root, d.component_kind, chosen, key + ".");
  }
}

template <class Options>
void add_struct(std::vector<Row>& rows, const YAML::Node& root, const std::string& prefix) {
  Options o;
  OptionDescriber d;
  o.visit(d);
  for (const auto& doc : d.docs())
    rows.push_back({prefix + doc.key, doc.type, doc.default_value, value_text(find(root, prefix + doc.key)), doc.doc});
}

}  // namespace

std::string explain_config(const Config& root) {
  const YAML::Node& y = root.node();
  std::vector<Row> rows;
  add_struct<RuntimeKeys>(rows, y, "");
  const std::string type = value_text(find(y, "experiment.type"));
  rows.push_back({"experiment.type", "experiments.experiment name", "(required)", type, "what runs"});
  add_struct<RunKeys>(rows, y, "experiment.");
  add_struct<RunSection>(rows, y, "run.");
  if (!type.empty()) add_component(rows, y, Experiment::kRegistryKind, type, "");
  std::ostringstream out;
  out << "| key | type | default | value here | doc |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& r : rows)
    out << "| " << cell(r.key) << " | " << cell(r.type) << " | " << cell(r.def) << " | " << cell(r.value) << " | "
        << cell(r.doc) << " |\n";
  return out.str();
}

void refuse_old_keys(const Config& root) {
  const YAML::Node& y = root.node();
  const std::string type = value_text(find(y, "experiment.type"));
  struct Moved {
    const char* system;  // experiment type the old key belonged to ("" = any)
    const char* old_key;
    const char* now;
  };
  static const Moved kMoved[] = {
      {"spa", "experiment.model", "model.path"},
      {"spa", "experiment.task", "task (a top-level section)"},
      {"spa", "experiment.adapter", "adapter (a top-level section)"},
      {"spa", "experiment.router", "router (a top-level section)"},
      {"spa", "experiment.train", "train (a top-level section)"},
      {"spa", "experiment.router_train", "router_train (a top-level section)"},
      {"spa", "experiment.state_cache", "state_cache (a top-level section)"},
      {"symbolic_moe", "experiment.data", "data (a top-level section)"},
      {"symbolic_moe", "experiment.experts", "experts (a top-level list)"},
      {"symbolic_moe", "experiment.skills", "skills (a top-level section)"},
      {"symbolic_moe", "experiment.recruit", "recruit (a top-level section)"},
      {"symbolic_moe", "experiment.profile", "profile (a top-level section)"},
      {"symbolic_moe", "experiment.executor", "executor (a top-level section)"},
      {"symbolic_moe", "experiment.models", "pool (a top-level section: pool.memory_budget_gb)"},
      {"federated", "backbone", "model (model.path names the encoder)"},
      {"federated", "model.type", "head.type (the SSF head; model: is the pretrained encoder)"},
      {"text_classification", "model", "classifier"},
  };
  for (const auto& m : kMoved) {
    if (type != m.system || !find(y, m.old_key)) continue;
    const std::string key = m.old_key;
    const auto dot = key.rfind('.');
    const Config parent = dot == std::string::npos ? root : root.at(key.substr(0, dot));
    throw ConfigError(parent.where(key.substr(dot == std::string::npos ? 0 : dot + 1)) + ": " + key + " is now " + m.now +
                      ": every system's config has one shape (README, Configs)");
  }
}

}  // namespace tandem
