#include "aha/reward/reward.h"

#include "aha/core/error.h"

namespace aha::reward {

std::optional<std::string> Sample::field(std::string_view name) const {
  if (!fields || !fields->is_object()) return std::nullopt;
  auto it = fields->find(std::string(name));
  if (it == fields->end() || it->is_null()) return std::nullopt;
  return it->is_string() ? it->get<std::string>() : it->dump();
}

void Registry::add(const std::string& name, Factory factory, std::string description) {
  AHA_CHECK(!name.empty(), "a reward needs a name");
  AHA_CHECK(factory, "reward \"", name, "\" has no factory");
  AHA_CHECK(!contains(name), "a reward named \"", name, "\" is already registered");
  factories_.emplace(name, std::make_pair(std::move(factory), std::move(description)));
}

std::unique_ptr<Reward> Registry::create(const std::string& name, const Json& params) const {
  auto it = factories_.find(name);
  if (it == factories_.end()) {
    std::string known;
    for (const auto& [n, _] : factories_)
      known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown reward \"" + name + "\" (registered: " + known + ")");
  }
  auto reward = it->second.first(params.is_null() ? Json::object() : params);
  AHA_CHECK(reward, "the factory of reward \"", name, "\" returned nothing");
  return reward;
}

std::vector<std::pair<std::string, std::string>> Registry::list() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, f] : factories_)
    out.emplace_back(n, f.second);
  return out;
}

double param_number(const Json& params, const std::string& reward, const std::string& key, double fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  if (!it->is_number())
    throw Error("expected a number, got " + it->dump(), "reward " + reward + ": params." + key);
  return it->get<double>();
}

std::string param_string(const Json& params, const std::string& reward, const std::string& key,
                         const std::string& fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  if (!it->is_string())
    throw Error("expected a string, got " + it->dump(), "reward " + reward + ": params." + key);
  return it->get<std::string>();
}

bool param_bool(const Json& params, const std::string& reward, const std::string& key, bool fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  if (!it->is_boolean())
    throw Error("expected a boolean, got " + it->dump(), "reward " + reward + ": params." + key);
  return it->get<bool>();
}

std::vector<std::string> param_strings(const Json& params, const std::string& reward,
                                       const std::string& key) {
  auto it = params.find(key);
  if (it == params.end()) return {};
  const std::string where = "reward " + reward + ": params." + key;
  if (!it->is_array()) throw Error("expected a list of strings, got " + it->dump(), where);
  std::vector<std::string> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string())
      throw Error("expected a string, got " + v.dump(), where + "[" + std::to_string(i) + "]");
    out.push_back(v.get<std::string>());
  }
  return out;
}

void check_param_keys(const Json& params, const std::string& reward, const std::vector<std::string>& known) {
  if (!params.is_object()) throw Error("params must be an object", "reward " + reward);
  for (auto it = params.begin(); it != params.end(); ++it) {
    bool ok = false;
    for (const auto& k : known)
      ok = ok || k == it.key();
    if (!ok) {
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      throw Error("unknown parameter (known: " + (list.empty() ? std::string("none") : list) + ")",
                  "reward " + reward + ": params." + it.key());
    }
  }
}

}  // namespace aha::reward
