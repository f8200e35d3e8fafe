// Reading and writing config structs as JSON, with errors that name the JSON path and the source.
//
// A config struct is a plain struct whose fields have defaults, plus a `visit` member that lists each field
// once:
//
//   struct OptimConfig {
//     double lr = 1e-6;
//     template <class V> void visit(V& v) { v("lr", lr, "peak learning rate", Constraint::greater_than(0)); }
//   };
//
// From that one list this header derives: loading from JSON (unknown key, wrong type and out-of-range value
// are errors naming e.g. `run.json: optim.lr`), writing to JSON, setting one field by its dotted path
// (`--set`), and a description of every field. Supported field types: bool, integers, floating point,
// std::string, std::optional, std::vector, std::map<std::string, T>, nlohmann::json (free-form), and nested
// visitable structs.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "aha/core/error.h"

namespace aha {

using Json = nlohmann::ordered_json;

// A limit on a field's value: a numeric interval, or a set of allowed strings.
struct Constraint {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;
  bool hi_open = false;
  std::vector<std::string> choices;  // non-empty: the string must be one of these

  static Constraint none() { return {}; }
  static Constraint range(double lo, double hi) { return {lo, hi, false, false, {}}; }
  static Constraint at_least(double lo) {
    return {lo, std::numeric_limits<double>::infinity(), false, false, {}};
  }
  static Constraint greater_than(double lo) {
    return {lo, std::numeric_limits<double>::infinity(), true, false, {}};
  }
  static Constraint one_of(std::vector<std::string> c) { return {.choices = std::move(c)}; }

  bool numeric() const { return choices.empty() && (std::isfinite(lo) || std::isfinite(hi)); }
  std::string describe() const;  // "in [0, 1]", "> 0", "one of a|b|c", "" when unconstrained
  bool admits(double x) const;   // numeric test
  bool admits(std::string_view s) const;
};

namespace config_detail {

struct Probe {
  template <class F>
  void operator()(const char*, F&, const char*, const Constraint& = {}) {}
};

}  // namespace config_detail

template <class T>
concept Visitable = requires(T& t, config_detail::Probe& p) {
  t.visit(p);
};

namespace config_detail {

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};

// Where an error happened: "<source>: <path>: <message>".
struct Where {
  const std::string& source;
  std::string path;
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(message, path.empty() ? source : source + ": " + path);
  }
  Where child(std::string_view key) const {
    return {source, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  Where index(size_t i) const { return {source, path + "[" + std::to_string(i) + "]"}; }
};

std::string json_kind(const Json& j);  // "string \"abc\"", "number 3", "object", ...
// "unknown key (did you mean "epsilon_low"? known keys here: ...)": the suggestion when one is close in
// spelling.
std::string unknown_key_message(const std::string& key, const std::vector<std::string>& known);

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "boolean";
  else if constexpr (std::is_integral_v<T>)
    return "integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "number";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (std::is_same_v<T, Json>)
    return "any JSON";
  else if constexpr (is_optional<T>::value)
    return type_name<typename T::value_type>() + " or null";
  else if constexpr (is_vector<T>::value)
    return "array of " + type_name<typename T::value_type>();
  else if constexpr (is_string_map<T>::value)
    return "object of " + type_name<typename T::mapped_type>();
  else
    return "object";
}

template <class T>
void read_value(const Json& j, T& out, const Where& at, const Constraint& c);

template <Visitable T>
struct ObjectReader {
  const Json& object;
  const Where& at;
  std::vector<std::string> known = {};
  template <class F>
  void operator()(const char* key, F& field, const char*, const Constraint& c = {}) {
    known.emplace_back(key);
    auto it = object.find(key);
    if (it != object.end()) read_value(*it, field, at.child(key), c);
  }
};

template <class T>
void read_value(const Json& j, T& out, const Where& at, const Constraint& c) {
  if constexpr (std::is_same_v<T, Json>) {
    out = j;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) at.fail("expected a boolean, got " + json_kind(j));
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    double as_double = 0;
    if (j.is_number_integer() || j.is_number_unsigned()) {
      as_double = j.get<double>();
      if (j.is_number_unsigned()
              ? j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())
              : (j.get<int64_t>() < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
                 (j.get<int64_t>() > 0 && static_cast<uint64_t>(j.get<int64_t>()) >
                                              static_cast<uint64_t>(std::numeric_limits<T>::max()))))
        at.fail("integer " + j.dump() + " does not fit the field's type");
      out = j.is_number_unsigned() ? static_cast<T>(j.get<uint64_t>()) : static_cast<T>(j.get<int64_t>());
    } else if (j.is_number_float() && std::trunc(j.get<double>()) == j.get<double>() &&
               std::abs(j.get<double>()) < 9.0e15) {
      as_double = j.get<double>();
      if (as_double < static_cast<double>(std::numeric_limits<T>::min()) ||
          as_double > static_cast<double>(std::numeric_limits<T>::max()))
        at.fail("integer " + j.dump() + " does not fit the field's type");
      out = static_cast<T>(as_double);
    } else {
      at.fail("expected an integer, got " + json_kind(j));
    }
    if (!c.admits(as_double)) at.fail("value " + j.dump() + " is out of range: must be " + c.describe());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) at.fail("expected a number, got " + json_kind(j));
    double x = j.get<double>();
    if (!std::isfinite(x)) at.fail("expected a finite number");
    if (!c.admits(x)) at.fail("value " + j.dump() + " is out of range: must be " + c.describe());
    out = static_cast<T>(x);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) at.fail("expected a string, got " + json_kind(j));
    const auto& s = j.get_ref<const std::string&>();
    if (!c.admits(s)) at.fail("value " + j.dump() + " is not allowed: must be " + c.describe());
    out = s;
  } else if constexpr (is_optional<T>::value) {
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type v{};
      if (out) v = *out;
      read_value(j, v, at, c);
      out = std::move(v);
    }
  } else if constexpr (is_vector<T>::value) {
    if (!j.is_array()) at.fail("expected an array, got " + json_kind(j));
    T result;
    result.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      typename T::value_type v{};
      read_value(j[i], v, at.index(i), c);
      result.push_back(std::move(v));
    }
    out = std::move(result);
  } else if constexpr (is_string_map<T>::value) {
    if (!j.is_object()) at.fail("expected an object, got " + json_kind(j));
    T result;
    for (auto it = j.begin(); it != j.end(); ++it) {
      typename T::mapped_type v{};
      read_value(it.value(), v, at.child(it.key()), c);
      result.emplace(it.key(), std::move(v));
    }
    out = std::move(result);
  } else if constexpr (Visitable<T>) {
    if (!j.is_object()) at.fail("expected an object, got " + json_kind(j));
    ObjectReader<T> reader{j, at, {}};
    out.visit(reader);
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool found = false;
      for (const auto& k : reader.known)
        found = found || k == it.key();
      if (!found) at.child(it.key()).fail(unknown_key_message(it.key(), reader.known));
    }
  } else {
    static_assert(sizeof(T) == 0, "unsupported config field type");
  }
}

template <class T>
Json write_value(const T& v);

struct ObjectWriter {
  Json& out;
  template <class F>
  void operator()(const char* key, const F& field, const char*, const Constraint& = {}) {
    out[key] = write_value(field);
  }
};

template <class T>
Json write_value(const T& v) {
  if constexpr (std::is_same_v<T, Json>) {
    return v;
  } else if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
    return Json(v);
  } else if constexpr (is_optional<T>::value) {
    return v ? write_value(*v) : Json(nullptr);
  } else if constexpr (is_vector<T>::value) {
    Json a = Json::array();
    for (const auto& e : v)
      a.push_back(write_value(e));
    return a;
  } else if constexpr (is_string_map<T>::value) {
    Json o = Json::object();
    for (const auto& [k, e] : v)
      o[k] = write_value(e);
    return o;
  } else {
    Json o = Json::object();
    ObjectWriter w{o};
    const_cast<T&>(v).visit(w);  // visit only reads through the writer
    return o;
  }
}

// Parses one --set path "a.b[2].c" into components ("a", "b", "[2]", "c").
std::vector<std::string> split_path(std::string_view path);

template <class T>
void set_at(T& target, const std::vector<std::string>& parts, size_t depth, const Json& value,
            const std::string& raw, const Where& at, const Constraint& c);

template <class T>
struct PathSetter {
  const std::vector<std::string>& parts;
  size_t depth;
  const Json& value;
  const std::string& raw;
  const Where& at;
  bool found = false;
  std::vector<std::string> known = {};
  template <class F>
  void operator()(const char* key, F& field, const char*, const Constraint& c = {}) {
    known.emplace_back(key);
    if (parts[depth] != key) return;
    found = true;
    set_at(field, parts, depth + 1, value, raw, at.child(key), c);
  }
};

template <class T>
void set_at(T& target, const std::vector<std::string>& parts, size_t depth, const Json& value,
            const std::string& raw, const Where& at, const Constraint& c) {
  if (depth == parts.size()) {
    // A string field takes the text as written, so `--set model.path=123` means the string "123".
    if constexpr (std::is_same_v<T, std::string>) {
      read_value(value.is_string() ? value : Json(raw), target, at, c);
    } else if constexpr (std::is_same_v<T, std::optional<std::string>>) {
      read_value(value.is_string() || value.is_null() ? value : Json(raw), target, at, c);
    } else {
      read_value(value, target, at, c);
    }
    return;
  }
  const std::string& part = parts[depth];
  if constexpr (is_vector<T>::value) {
    if (part.size() < 3 || part.front() != '[') at.fail("expected an index like [0] after this array");
    size_t i = std::stoul(part.substr(1, part.size() - 2));
    if (i >= target.size())
      at.index(i).fail("index out of range (the array has " + std::to_string(target.size()) + " elements)");
    set_at(target[i], parts, depth + 1, value, raw, at.index(i), c);
  } else if constexpr (is_string_map<T>::value) {
    set_at(target[part], parts, depth + 1, value, raw, at.child(part), c);
  } else if constexpr (is_optional<T>::value) {
    if (!target) target.emplace();
    set_at(*target, parts, depth, value, raw, at, c);
  } else if constexpr (std::is_same_v<T, Json>) {
    Json* node = &target;
    for (size_t d = depth; d < parts.size(); ++d) {
      if (parts[d].front() == '[') {
        size_t i = std::stoul(parts[d].substr(1, parts[d].size() - 2));
        if (!node->is_array() || i >= node->size()) at.fail("no element " + parts[d] + " here");
        node = &(*node)[i];
      } else {
        if (!node->is_object() && !node->is_null())
          at.fail("cannot set key \"" + parts[d] + "\" inside a " + json_kind(*node));
        node = &(*node)[parts[d]];
      }
    }
    *node = value.is_discarded() ? Json(raw) : value;
  } else if constexpr (Visitable<T>) {
    PathSetter<T> setter{parts, depth, value, raw, at};
    target.visit(setter);
    if (!setter.found) at.child(part).fail(unknown_key_message(part, setter.known));
  } else {
    at.fail("is a " + type_name<T>() + " and has no field \"" + part + "\"");
  }
}

struct FieldDoc {
  std::string path, type, default_value, doc, constraint;
};

template <class T>
void describe(const T& v, const std::string& prefix, std::vector<FieldDoc>& out);

struct Describer {
  const std::string& prefix;
  std::vector<FieldDoc>& out;
  template <class F>
  void operator()(const char* key, const F& field, const char* doc, const Constraint& c = {}) {
    std::string path = prefix.empty() ? key : prefix + "." + key;
    if constexpr (Visitable<F>) {
      describe(field, path, out);
    } else {
      out.push_back({path, type_name<F>(), write_value(field).dump(), doc, c.describe()});
    }
  }
};

template <class T>
void describe(const T& v, const std::string& prefix, std::vector<FieldDoc>& out) {
  Describer d{prefix, out};
  const_cast<T&>(v).visit(d);
}

}  // namespace config_detail

using config_detail::FieldDoc;

// Reads `j` into `out` (fields absent from `j` keep their current values). `source` names the input in
// errors.
template <Visitable T>
void from_json(const Json& j, T& out, const std::string& source) {
  config_detail::read_value(j, out, config_detail::Where{source, ""}, Constraint{});
}

template <Visitable T>
Json to_json(const T& v) {
  return config_detail::write_value(v);
}

// Applies one override "a.b.c=value". The value is parsed as JSON when it parses (numbers, booleans, arrays,
// objects, quoted strings) and taken as a plain string otherwise; string fields always take the text as
// written.
template <Visitable T>
void apply_override(T& target, std::string_view assignment) {
  const std::string source = "--set " + std::string(assignment);
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) throw Error("expected key.path=value", source);
  const std::string path(assignment.substr(0, eq));
  const std::string raw(assignment.substr(eq + 1));
  Json value = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = Json(raw);
  config_detail::set_at(target, config_detail::split_path(path), 0, value, raw,
                        config_detail::Where{source, ""}, Constraint{});
}

// One line per leaf field: dotted path, type, default (the value in `v`), constraint and doc.
template <Visitable T>
std::vector<FieldDoc> describe_fields(const T& v) {
  std::vector<FieldDoc> out;
  config_detail::describe(v, "", out);
  return out;
}

// Parses JSON text; a syntax error names `source`, the line and the column.
Json parse_json(std::string_view text, const std::string& source);
// Reads and parses a JSON file; errors name the file.
Json read_json_file(const std::string& path);

}  // namespace aha
