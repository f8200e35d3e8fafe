// Byte-level BPE from tokenizer.json. Each step mirrors one piece of HF tokenizers (0.23):
// added_vocabulary.rs (cutting out added tokens), pre_tokenizers/split.rs + tokenizer/pattern.rs (regex
// splits and their behaviours), pre_tokenizers/byte_level.rs (byte alphabet, GPT-2 regex, prefix space),
// models/bpe/{model,word}.rs (merges), processors/template.rs, and the ByteLevel decoder. What must hold: the
// same ids and the same decoded text as tokenizers for every input, and a load-time error for every feature
// that is not reproduced.
#include "aha/text/bpe.h"

#include <algorithm>
#include <array>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "aha/core/error.h"
#include "aha/io/jsonl.h"
#include "aha/text/utf8.h"
#include "json_file.h"
#include "regex.h"

namespace aha::text {

namespace {

using nlohmann::json;

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is true.
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Rust regex's Unicode \w (UTS #18), which added tokens' single_word test uses.
constexpr const char* kWordChar = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";
constexpr size_t kCacheCapacity = 10000;  // pieces remembered, as HF's default
constexpr size_t kCacheMaxPiece = 256;    // longer pieces are not cached (HF's MAX_LENGTH)

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68 map to U+0100 upwards.
std::array<char32_t, 256> byte_alphabet() {
  std::array<char32_t, 256> table{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b)
    direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b)
    direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b)
    direct[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b)
    table[b] = direct[b] ? static_cast<char32_t>(b) : next++;
  return table;
}

// Unicode's White_Space property (25 code points): Rust's \s and char::is_whitespace.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Where a value sits in tokenizer.json, for error messages: "<file>: <what is wrong at json.path>".
struct At {
  const std::string& source;
  std::string path;
  [[noreturn]] void fail(const std::string& message) const { throw Error(message, source); }
  At child(std::string_view key) const {
    return {source, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  At index(size_t i) const { return {source, path + "[" + std::to_string(i) + "]"}; }
};

const json* find(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool get_bool(const json& object, const char* key, bool fallback, const At& at) {
  const json* v = find(object, key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) at.child(key).fail(at.child(key).path + ": expected a boolean, got " + v->dump());
  return v->get<bool>();
}

const std::string& get_string(const json& object, const char* key, const At& at) {
  const json* v = find(object, key);
  if (v == nullptr || !v->is_string())
    at.fail(at.child(key).path + ": expected a string, got " + (v ? v->dump() : std::string("nothing")));
  return v->get_ref<const std::string&>();
}

const std::string& type_of(const json& object, const At& at) {
  if (!object.is_object()) at.fail(at.path + ": expected an object, got " + object.dump());
  return get_string(object, "type", at);
}

std::string in_quotes(const std::string& s) {
  return "\"" + s + "\"";
}

// ---- added tokens
// ---------------------------------------------------------------------------------------------

struct AddedToken {
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
  bool operator==(const AddedToken&) const = default;
};

// Leftmost-longest matching of a set of strings (what HF's Aho-Corasick with MatchKind::LeftmostLongest
// does).
class TokenTrie {
 public:
  void insert(std::string_view s, int64_t id) {
    int32_t node = 0;
    for (unsigned char c : s) {
      auto it = nodes_[node].children.find(c);
      if (it == nodes_[node].children.end()) {
        nodes_.emplace_back();
        it = nodes_[node].children.emplace(c, static_cast<int32_t>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    nodes_[node].id = id;
    first_[static_cast<unsigned char>(s[0])] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }
  // The longest entry starting at `pos`: {id, length}, or {-1, 0}.
  std::pair<int64_t, size_t> longest_at(std::string_view text, size_t pos) const {
    std::pair<int64_t, size_t> best{-1, 0};
    if (!first_[static_cast<unsigned char>(text[pos])]) return best;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      auto it = nodes_[node].children.find(static_cast<unsigned char>(text[i]));
      if (it == nodes_[node].children.end()) break;
      node = it->second;
      if (nodes_[node].id >= 0) best = {nodes_[node].id, i + 1 - pos};
    }
    return best;
  }

 private:
  struct Node {
    std::map<unsigned char, int32_t> children;
    int64_t id = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};
  bool empty_ = true;
};

// A piece of the text: [begin, end) and the added token it is, or -1.
struct Span {
  size_t begin, end;
  int64_t id;
};

// ---- pre-tokenizer
// --------------------------------------------------------------------------------------------

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStep {
  std::shared_ptr<const detail::Regex> regex;  // null: split on `literal`
  std::string literal;
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;

  // HF's Pattern::find_matches: pieces covering `s`, each flagged as a match or not.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> matches(std::string_view s) const {
    std::vector<std::pair<std::pair<size_t, size_t>, bool>> out;
    if (s.empty()) return {{{0, 0}, false}};
    std::vector<std::pair<size_t, size_t>> found;
    if (regex) {
      found = regex->find_all(s);
    } else {
      for (size_t p = s.find(literal); p != std::string_view::npos; p = s.find(literal, p + literal.size()))
        found.emplace_back(p, p + literal.size());
    }
    size_t prev = 0;
    for (auto [b, e] : found) {
      if (prev != b) out.push_back({{prev, b}, false});
      out.push_back({{b, e}, true});
      prev = e;
    }
    if (prev != s.size()) out.push_back({{prev, s.size()}, false});
    if (invert)
      for (auto& m : out)
        m.second = !m.second;
    return out;
  }

  // NormalizedString::split: the kept pieces, in order (empty ones dropped as PreTokenizedString does).
  void apply(std::string_view s, std::vector<std::string_view>& out) const {
    auto m = matches(s);
    std::vector<std::pair<size_t, size_t>> keep;
    switch (behavior) {
      case Behavior::kIsolated:
        for (auto& [o, is_match] : m)
          keep.push_back(o);
        break;
      case Behavior::kRemoved:
        for (auto& [o, is_match] : m)
          if (!is_match) keep.push_back(o);
        break;
      case Behavior::kContiguous: {
        bool previous = false;
        for (auto& [o, is_match] : m) {
          if (is_match == previous && !keep.empty())
            keep.back().second = o.second;
          else
            keep.push_back(o);
          previous = is_match;
        }
        break;
      }
      case Behavior::kMergedWithPrevious: {
        bool previous = false;
        for (auto& [o, is_match] : m) {
          if (is_match && !previous && !keep.empty())
            keep.back().second = o.second;
          else
            keep.push_back(o);
          previous = is_match;
        }
        break;
      }
      case Behavior::kMergedWithNext: {
        bool previous = false;
        for (auto it = m.rbegin(); it != m.rend(); ++it) {
          if (it->second && !previous && !keep.empty())
            keep.back().first = it->first.first;
          else
            keep.push_back(it->first);
          previous = it->second;
        }
        std::reverse(keep.begin(), keep.end());
        break;
      }
    }
    for (auto [b, e] : keep)
      if (e > b) out.push_back(s.substr(b, e - b));
  }
};

// A template of one sequence: ids to insert and where the sequence goes.
struct Template {
  std::vector<std::vector<int64_t>> items;  // an empty item stands for the sequence ($A)
};

}  // namespace

// ---- the tokenizer
// ----------------------------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  std::string source;

  // model (BPE)
  std::unordered_map<std::string, int32_t> vocab;
  std::array<int32_t, 256>
      byte_id{};  // id of each byte's one-character token, -1 when the vocabulary lacks it
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)
  bool ignore_merges = false;
  int32_t unk_id = -1;
  bool fuse_unk = false;
  std::array<char32_t, 256> alphabet = byte_alphabet();

  // added tokens
  std::unordered_map<std::string, int64_t> added_ids;  // content -> id
  std::map<int64_t, AddedToken> added;                 // id -> token
  std::unordered_set<std::string> special_contents;
  TokenTrie raw_trie, normalized_trie;  // tokens matched before / after normalization
  std::unique_ptr<detail::Regex> word_char;

  // pre-tokenizer: Split steps, then ByteLevel
  std::vector<SplitStep> splits;
  bool add_prefix_space = false;
  std::optional<SplitStep> byte_level_split;  // GPT-2's regex, Isolated, when use_regex

  // post-processing and decoding
  std::vector<Template> templates;
  bool prepend_bos = false, append_eos = false;  // from tokenizer_config.json's add_bos_token / add_eos_token
  bool byte_level_decoder = false;
  std::vector<std::string> token_text;   // id -> token as HF's decode sees it ("" and !has_token: no token)
  std::vector<std::string> token_bytes;  // id -> what the decoder makes of it
  std::vector<bool> has_token, special;
  SpecialTokens specials;

  mutable std::shared_mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void load_model(const json& model, const At& at);
  void load_added_tokens(const json& list, const At& at);
  void check_normalizer(const json& n, const At& at) const;
  void load_pre_tokenizer(const json& p, const At& at);
  SplitStep parse_split(const json& s, const At& at) const;
  void load_post_processor(const json& p, const At& at);
  void load_decoder(const json& d, const At& at);
  void load_config(const json& config, const std::string& config_source);
  void build_tables();

  std::optional<int64_t> lookup(std::string_view token) const;
  std::vector<Span> find_added(std::string_view sentence, const TokenTrie& trie) const;
  void pre_tokenize(std::string_view text, std::vector<std::string_view>& pieces,
                    std::deque<std::string>& owned) const;
  void bpe(std::string_view piece, std::vector<int64_t>& out) const;
  std::vector<int32_t> merge_word(std::string_view piece) const;
  std::vector<int64_t> post_process(std::vector<int64_t> ids, bool add_special_tokens) const;
};

void BpeTokenizer::Impl::load_model(const json& model, const At& at) {
  const std::string& type = type_of(model, at);
  if (type != "BPE")
    at.child("type").fail("model.type " + in_quotes(type) + " is not supported (only \"BPE\")");
  if (const json* d = find(model, "dropout");
      d && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0))
    at.fail("model.dropout " + d->dump() +
            " is not supported (BPE dropout is random; aha encodes deterministically)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = find(model, key);
        v && !v->is_null() && !(v->is_string() && v->get<std::string>().empty()))
      at.fail(at.child(key).path + " " + v->dump() + " is not supported");
  if (get_bool(model, "byte_fallback", false, at))
    at.fail("model.byte_fallback true is not supported (SentencePiece-style BPE)");
  ignore_merges = get_bool(model, "ignore_merges", false, at);
  fuse_unk = get_bool(model, "fuse_unk", false, at);

  const json* v = find(model, "vocab");
  if (v == nullptr || !v->is_object()) at.child("vocab").fail("model.vocab: expected an object of token: id");
  vocab.reserve(v->size());
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX)
      at.fail("model.vocab[" + in_quotes(it.key()) + "]: expected a non-negative id, got " + it->dump());
    vocab.emplace(it.key(), it->get<int32_t>());
  }
  if (const json* unk = find(model, "unk_token"); unk && !unk->is_null()) {
    auto it = unk->is_string() ? vocab.find(unk->get<std::string>()) : vocab.end();
    if (it == vocab.end()) at.fail("model.unk_token " + unk->dump() + " is not in model.vocab");
    unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(s, alphabet[b]);
    auto it = vocab.find(s);
    byte_id[b] = it == vocab.end() ? -1 : it->second;
  }

  const json* m = find(model, "merges");
  if (m == nullptr || !m->is_array()) at.fail("model.merges: expected an array");
  merges.reserve(m->size());
  for (size_t rank = 0; rank < m->size(); ++rank) {
    const json& e = (*m)[rank];
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        at.fail("model.merges[" + std::to_string(rank) + "]: expected \"a b\", got " + e.dump());
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      at.fail("model.merges[" + std::to_string(rank) + "]: expected \"a b\" or [a, b], got " + e.dump());
    }
    auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
    for (auto [it, tok] : {std::pair{ia, &a}, std::pair{ib, &b}})
      if (it == vocab.end())
        at.fail("model.merges[" + std::to_string(rank) + "]: " + in_quotes(*tok) + " is not in model.vocab");
    if (iab == vocab.end())
      at.fail("model.merges[" + std::to_string(rank) + "]: the merged token " + in_quotes(a + b) +
              " is not in model.vocab");
    const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    merges[key] = {static_cast<uint32_t>(rank),
                   iab->second};  // a repeated pair keeps its last rank, as in HF
  }
}

// AddedVocabulary::add_tokens: an added token whose content is already a token keeps that id; the others get
// ids from the model's vocabulary size upwards. (The "id" written in the file is not what decides.)
void BpeTokenizer::Impl::load_added_tokens(const json& list, const At& at) {
  if (list.is_null()) return;
  if (!list.is_array()) at.fail("added_tokens: expected an array");
  int64_t next_id = static_cast<int64_t>(vocab.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const At ti = at.index(i);
    AddedToken tok;
    tok.content = get_string(t, "content", ti);
    tok.single_word = get_bool(t, "single_word", false, ti);
    tok.lstrip = get_bool(t, "lstrip", false, ti);
    tok.rstrip = get_bool(t, "rstrip", false, ti);
    tok.special = get_bool(t, "special", false, ti);
    tok.normalized = get_bool(t, "normalized", !tok.special, ti);
    if (tok.content.empty()) continue;
    if (io::find_invalid_utf8(tok.content)) ti.fail(ti.path + ".content is not valid UTF-8");
    if (auto it = added_ids.find(tok.content); it != added_ids.end() && added[it->second] == tok) continue;
    int64_t id;
    if (auto it = added_ids.find(tok.content); it != added_ids.end())
      id = it->second;
    else if (auto iv = vocab.find(tok.content); iv != vocab.end())
      id = iv->second;
    else
      id = next_id++;
    added_ids[tok.content] = id;
    if (tok.special) special_contents.insert(tok.content);
    added[id] = tok;
  }
  for (const auto& [id, tok] : added)
    (tok.normalized ? normalized_trie : raw_trie).insert(tok.content, id);
}

void BpeTokenizer::Impl::check_normalizer(const json& n, const At& at) const {
  if (n.is_null()) return;
  const std::string& type = type_of(n, at);
  if (type != "Sequence")
    at.fail(at.path + " " + in_quotes(type) + " is not supported (aha implements no text normalization)");
  const json* list = find(n, "normalizers");
  if (list == nullptr || !list->is_array()) at.fail(at.path + ".normalizers: expected an array");
  for (size_t i = 0; i < list->size(); ++i)
    check_normalizer((*list)[i], at.child("normalizers").index(i));
}

SplitStep BpeTokenizer::Impl::parse_split(const json& s, const At& at) const {
  SplitStep step;
  const json* pattern = find(s, "pattern");
  if (pattern == nullptr || !pattern->is_object() || pattern->size() != 1)
    at.fail(at.path + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
  if (const json* r = find(*pattern, "Regex"); r && r->is_string()) {
    try {
      step.regex = std::make_shared<detail::Regex>(r->get<std::string>());
    } catch (const Error& e) {
      at.fail(at.path + ".pattern: " + e.message());
    }
  } else if (const json* l = find(*pattern, "String"); l && l->is_string()) {
    step.literal = l->get<std::string>();
    if (step.literal.empty()) at.fail(at.path + ".pattern: an empty String pattern is not supported");
  } else {
    at.fail(at.path + ".pattern: expected {\"Regex\": ...} or {\"String\": ...}, got " + pattern->dump());
  }
  static const std::map<std::string, Behavior> behaviors = {
      {"Removed", Behavior::kRemoved},
      {"Isolated", Behavior::kIsolated},
      {"MergedWithPrevious", Behavior::kMergedWithPrevious},
      {"MergedWithNext", Behavior::kMergedWithNext},
      {"Contiguous", Behavior::kContiguous}};
  const std::string& behavior = get_string(s, "behavior", at);
  auto it = behaviors.find(behavior);
  if (it == behaviors.end()) at.fail(at.path + ".behavior " + in_quotes(behavior) + " is not supported");
  step.behavior = it->second;
  step.invert = get_bool(s, "invert", false, at);
  return step;
}

void BpeTokenizer::Impl::load_pre_tokenizer(const json& p, const At& at) {
  if (p.is_null())
    at.fail("pre_tokenizer null is not supported (aha reads byte-level BPE: it needs ByteLevel)");
  std::vector<std::pair<const json*, At>> steps;
  if (type_of(p, at) == "Sequence") {
    const json* list = find(p, "pretokenizers");
    if (list == nullptr || !list->is_array()) at.fail("pre_tokenizer.pretokenizers: expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      steps.emplace_back(&(*list)[i], at.child("pretokenizers").index(i));
  } else {
    steps.emplace_back(&p, at);
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& [s, sat] = steps[i];
    const std::string& type = type_of(*s, sat);
    if (type == "ByteLevel") {
      if (i + 1 != steps.size())
        sat.fail(sat.path + ": ByteLevel before other pre-tokenizers is not supported (it must come last)");
      add_prefix_space = get_bool(*s, "add_prefix_space", true, sat);
      if (get_bool(*s, "use_regex", true, sat)) {
        byte_level_split.emplace();
        byte_level_split->regex = std::make_shared<detail::Regex>(kGpt2Regex);
      }
      return;
    }
    if (type == "Split") {
      splits.push_back(parse_split(*s, sat));
    } else if (type == "Digits") {
      // Digits splits on char::is_numeric (general category N), each digit alone or runs of them.
      SplitStep step;
      step.regex = std::make_shared<detail::Regex>(R"(\p{N})");
      step.behavior =
          get_bool(*s, "individual_digits", false, sat) ? Behavior::kIsolated : Behavior::kContiguous;
      splits.push_back(std::move(step));
    } else {
      sat.fail(sat.path + " " + in_quotes(type) + " is not supported (supported: Split, Digits, ByteLevel)");
    }
  }
  at.fail("pre_tokenizer: no ByteLevel step, which aha needs (it reads byte-level BPE only)");
}

void BpeTokenizer::Impl::load_post_processor(const json& p, const At& at) {
  if (p.is_null()) return;
  const std::string& type = type_of(p, at);
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json* list = find(p, "processors");
    if (list == nullptr || !list->is_array()) at.fail(at.path + ".processors: expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      load_post_processor((*list)[i], at.child("processors").index(i));
    return;
  }
  Template t;
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto pair_id = [&](const char* key) {
      const json* v = find(p, key);
      if (v == nullptr || !v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer())
        at.fail(at.child(key).path + ": expected [token, id]");
      return (*v)[1].get<int64_t>();
    };
    t.items = {{pair_id("cls")}, {}, {pair_id("sep")}};
  } else if (type == "TemplateProcessing") {
    const json* single = find(p, "single");
    const json* tokens = find(p, "special_tokens");
    if (single == nullptr || !single->is_array()) at.fail(at.path + ".single: expected an array of pieces");
    for (size_t i = 0; i < single->size(); ++i) {
      const json& piece = (*single)[i];
      const At pat = at.child("single").index(i);
      if (const json* seq = find(piece, "Sequence")) {
        if (!seq->is_object() || find(*seq, "id") == nullptr || (*seq)["id"] != "A")
          pat.fail(pat.path + ": a single-sequence template can only hold sequence A");
        t.items.emplace_back();
      } else if (const json* sp = find(piece, "SpecialToken")) {
        const std::string& name = get_string(*sp, "id", pat.child("SpecialToken"));
        const json* entry = tokens ? find(*tokens, name.c_str()) : nullptr;
        const json* ids = entry ? find(*entry, "ids") : nullptr;
        if (ids == nullptr || !ids->is_array() || ids->empty())
          pat.fail(pat.path + ": special token " + in_quotes(name) + " has no ids in " + at.path +
                   ".special_tokens");
        std::vector<int64_t> v;
        for (const json& id : *ids)
          v.push_back(id.get<int64_t>());
        t.items.push_back(std::move(v));
      } else {
        pat.fail(pat.path + ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
  } else {
    at.fail(at.path + " " + in_quotes(type) +
            " is not supported (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, "
            "Sequence)");
  }
  templates.push_back(std::move(t));
}

void BpeTokenizer::Impl::load_decoder(const json& d, const At& at) {
  if (d.is_null()) return;
  const std::string& type = type_of(d, at);
  if (type != "ByteLevel")
    at.fail("decoder " + in_quotes(type) + " is not supported (supported: ByteLevel, null)");
  byte_level_decoder = true;
}

std::optional<int64_t> BpeTokenizer::Impl::lookup(std::string_view token) const {
  if (auto it = added_ids.find(std::string(token)); it != added_ids.end()) return it->second;
  if (auto it = vocab.find(std::string(token)); it != vocab.end()) return it->second;
  return std::nullopt;
}

void BpeTokenizer::Impl::build_tables() {
  int64_t size = 0;
  for (const auto& [tok, id] : vocab)
    size = std::max<int64_t>(size, id + 1);
  if (!added.empty()) size = std::max(size, added.rbegin()->first + 1);
  token_text.assign(size, {});
  has_token.assign(size, false);
  special.assign(size, false);
  for (const auto& [tok, id] : vocab) {
    token_text[id] = tok;
    has_token[id] = true;
  }
  for (const auto& [id, tok] : added) {
    token_text[id] = tok.content;
    has_token[id] = true;
  }
  std::unordered_map<char32_t, char> to_byte;
  for (int b = 0; b < 256; ++b)
    to_byte[alphabet[b]] = static_cast<char>(b);
  token_bytes.assign(size, {});
  for (int64_t id = 0; id < size; ++id) {
    const std::string& s = token_text[id];
    special[id] = has_token[id] && special_contents.count(s) > 0;
    if (!byte_level_decoder) continue;
    // The ByteLevel decoder maps a token through the byte alphabet only when every character is in it.
    std::string bytes;
    bool all = true;
    for (size_t i = 0; i < s.size() && all;) {
      const Utf8Step step = utf8_step(s, i);
      auto it = to_byte.find(step.code_point);
      all = step.valid && it != to_byte.end();
      if (all) bytes += it->second;
      i += step.length;
    }
    token_bytes[id] = all ? bytes : s;
  }
  if (!byte_level_decoder) token_bytes = token_text;
}

void BpeTokenizer::Impl::load_config(const json& config, const std::string& config_source) {
  auto token_id = [&](const char* key) -> std::optional<int64_t> {
    const json* v = find(config, key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    const json* content = v->is_object() ? find(*v, "content") : v;
    if (content == nullptr || !content->is_string())
      throw Error(std::string(key) + ": expected a token string or {\"content\": ...}, got " + v->dump(),
                  config_source);
    auto id = lookup(content->get<std::string>());
    if (!id)
      throw Error(std::string(key) + " " + content->dump() + " is not a token of " + source, config_source);
    return id;
  };
  if (config.is_object()) {
    specials.bos = token_id("bos_token");
    specials.eos = token_id("eos_token");
    specials.pad = token_id("pad_token");
  }
  // Without a config, the BOS is the token the post-processor puts first, if any.
  if (!specials.bos)
    for (const auto& t : templates)
      if (!t.items.empty() && !t.items.front().empty()) {
        specials.bos = t.items.front().front();
        break;
      }
  const std::vector<int64_t> empty_with_specials = post_process({}, true);
  if (config.is_object()) {
    const At at{config_source, ""};
    if (get_bool(config, "add_bos_token", false, at)) {
      if (!specials.bos) throw Error("add_bos_token is true but there is no bos_token", config_source);
      prepend_bos = empty_with_specials.empty() || empty_with_specials.front() != *specials.bos;
    }
    if (get_bool(config, "add_eos_token", false, at)) {
      if (!specials.eos) throw Error("add_eos_token is true but there is no eos_token", config_source);
      append_eos = empty_with_specials.empty() || empty_with_specials.back() != *specials.eos;
    }
  }
}

// AddedVocabulary::find_matches: split `sentence` around the added tokens of `trie`.
std::vector<Span> BpeTokenizer::Impl::find_added(std::string_view sentence, const TokenTrie& trie) const {
  std::vector<Span> out;
  if (trie.empty() || sentence.empty()) {
    if (!sentence.empty()) out.push_back({0, sentence.size(), -1});
    return out;
  }
  auto last_char = [&](size_t end) {  // the code point that ends at `end`
    size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(sentence[b]) & 0xC0) == 0x80)
      --b;
    return std::pair{utf8_step(sentence, b).code_point, b};
  };
  auto is_word = [&](size_t begin, size_t length) {
    return word_char->search(sentence.substr(begin, length));
  };
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < sentence.size()) {
    auto [id, length] = trie.longest_at(sentence, pos);
    if (id < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + length;
    pos = stop;
    const AddedToken& tok = added.at(id);
    if (tok.single_word) {
      bool word_before = false, word_after = false;
      if (start > 0) {
        auto [cp, b] = last_char(start);
        word_before = is_word(b, start - b);
      }
      if (stop < sentence.size()) word_after = is_word(stop, utf8_step(sentence, stop).length);
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        auto [cp, b] = last_char(new_start);
        if (!is_white_space(cp)) break;
        new_start = b;
      }
      start = std::max(new_start, start_offset);
    }
    if (tok.rstrip) {
      while (stop < sentence.size()) {
        const Utf8Step step = utf8_step(sentence, stop);
        if (!is_white_space(step.code_point)) break;
        stop += step.length;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, id});
    start_offset = stop;
  }
  if (start_offset != sentence.size()) out.push_back({start_offset, sentence.size(), -1});
  return out;
}

void BpeTokenizer::Impl::pre_tokenize(std::string_view text, std::vector<std::string_view>& pieces,
                                      std::deque<std::string>& owned) const {
  std::vector<std::string_view> current{text}, next;
  for (const SplitStep& step : splits) {
    next.clear();
    for (std::string_view s : current)
      step.apply(s, next);
    std::swap(current, next);
  }
  for (std::string_view s : current) {
    if (add_prefix_space && s.front() != ' ') {
      std::string& prefixed = owned.emplace_back(1, ' ');
      prefixed.append(s);
      s = prefixed;
    }
    if (byte_level_split)
      byte_level_split->apply(s, pieces);
    else
      pieces.push_back(s);
  }
}

// Word::merge_all: merge the pair of lowest rank first (leftmost on ties) until no pair has a merge.
std::vector<int32_t> BpeTokenizer::Impl::merge_word(std::string_view piece) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  int32_t pending_unk = -1;  // HF holds an unknown symbol back so that consecutive ones can be fused
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };
  for (unsigned char c : piece) {
    const int32_t id = byte_id[c];
    if (id >= 0) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(id);
    } else if (unk_id >= 0) {
      if (pending_unk >= 0 && !fuse_unk) add(pending_unk);
      pending_unk = unk_id;
    }  // no unk token: HF drops the byte
  }
  if (pending_unk >= 0) add(pending_unk);

  struct Merge {
    uint32_t rank;
    int32_t pos, new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  auto pair_key = [](int32_t a, int32_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
  };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<>> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (auto it = merges.find(pair_key(symbols[i].id, symbols[i + 1].id)); it != merges.end())
      queue.push({it->second.first, static_cast<int32_t>(i), it->second.second});
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges.find(pair_key(left.id, right.id));
    if (it == merges.end() || it->second.second != top.new_id) continue;  // a stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0)
      if (auto m = merges.find(pair_key(symbols[left.prev].id, left.id)); m != merges.end())
        queue.push({m->second.first, left.prev, m->second.second});
    if (left.next >= 0)
      if (auto m = merges.find(pair_key(left.id, symbols[left.next].id)); m != merges.end())
        queue.push({m->second.first, top.pos, m->second.second});
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

void BpeTokenizer::Impl::bpe(std::string_view piece, std::vector<int64_t>& out) const {
  if (ignore_merges) {
    std::string mapped;
    for (unsigned char c : piece)
      append_utf8(mapped, alphabet[c]);
    if (auto it = vocab.find(mapped); it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = piece.size() < kCacheMaxPiece;
  if (cacheable) {
    std::shared_lock lock(cache_mutex);
    if (auto it = cache.find(std::string(piece)); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex);
    if (cache.size() < kCacheCapacity) cache.emplace(std::string(piece), std::move(ids));
  }
}

std::vector<int64_t> BpeTokenizer::Impl::post_process(std::vector<int64_t> ids,
                                                      bool add_special_tokens) const {
  if (!add_special_tokens) return ids;
  for (const Template& t : templates) {
    std::vector<int64_t> next;
    for (const auto& item : t.items)
      next.insert(next.end(), item.empty() ? ids.begin() : item.begin(),
                  item.empty() ? ids.end() : item.end());
    ids = std::move(next);
  }
  if (prepend_bos) ids.insert(ids.begin(), *specials.bos);
  if (append_eos) ids.push_back(*specials.eos);
  return ids;
}

BpeTokenizer::BpeTokenizer(const json& tokenizer_json, const json& config, const std::string& source) {
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  const At root{impl->source, ""};
  if (!tokenizer_json.is_object()) root.fail("expected a JSON object (an HF tokenizer.json)");
  if (const json* v = find(tokenizer_json, "version"); v && *v != "1.0")
    root.fail("version " + v->dump() + " is not supported (only \"1.0\")");
  for (const char* key : {"truncation", "padding"})
    if (const json* v = find(tokenizer_json, key); v && !v->is_null())
      root.fail(std::string(key) + " is not supported (set it to null: aha truncates and pads itself)");
  const json* model = find(tokenizer_json, "model");
  if (model == nullptr) root.fail("no \"model\": not an HF tokenizer.json");
  impl->load_model(*model, root.child("model"));
  const json null_json;
  auto field = [&](const char* key) -> const json& {
    const json* v = find(tokenizer_json, key);
    return v ? *v : null_json;
  };
  impl->check_normalizer(field("normalizer"), root.child("normalizer"));
  impl->load_pre_tokenizer(field("pre_tokenizer"), root.child("pre_tokenizer"));
  impl->load_added_tokens(field("added_tokens"), root.child("added_tokens"));
  impl->word_char = std::make_unique<detail::Regex>(kWordChar);
  impl->load_post_processor(field("post_processor"), root.child("post_processor"));
  impl->load_decoder(field("decoder"), root.child("decoder"));
  impl->build_tables();
  const std::string config_source =
      (std::filesystem::path(source).parent_path() / "tokenizer_config.json").string();
  impl->load_config(config, config_source);
  impl_ = std::move(impl);
}

BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_file(const std::string& path) {
  return std::make_unique<BpeTokenizer>(detail::read_json(path), detail::read_config_beside(path), path);
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (auto bad = io::find_invalid_utf8(text)) AHA_FAIL("encode: the text is not valid UTF-8 at byte ", *bad);
  std::vector<int64_t> ids;
  std::vector<std::string_view> pieces;
  std::deque<std::string> owned;  // prefixed pieces; a deque keeps them in place while pieces point into them
  // Added tokens that match the raw text, then (in what is left, after normalization, which aha's supported
  // normalizers leave unchanged) those that match the normalized text.
  for (const Span& a : impl_->find_added(text, impl_->raw_trie)) {
    if (a.id >= 0) {
      ids.push_back(a.id);
      continue;
    }
    const std::string_view part = text.substr(a.begin, a.end - a.begin);
    for (const Span& b : impl_->find_added(part, impl_->normalized_trie)) {
      if (b.id >= 0) {
        ids.push_back(b.id);
        continue;
      }
      pieces.clear();
      owned.clear();
      impl_->pre_tokenize(part.substr(b.begin, b.end - b.begin), pieces, owned);
      for (std::string_view piece : pieces)
        impl_->bpe(piece, ids);
    }
  }
  return impl_->post_process(std::move(ids), add_special_tokens);
}

std::string BpeTokenizer::decode(std::span<const int64_t> ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  for (int64_t id : ids) {
    // Ids the vocabulary does not have decode to nothing, as in HF tokenizers: a model's (padded) vocabulary
    // can be larger than its tokenizer's, so sampling may produce them.
    if (id < 0 || id >= vocab_size()) continue;
    if (!impl_->has_token[id] || (skip_special_tokens && impl_->special[id])) continue;
    // Without a decoder HF joins the tokens with spaces.
    if (!impl_->byte_level_decoder && !first) out += ' ';
    out += impl_->token_bytes[id];
    first = false;
  }
  return impl_->byte_level_decoder ? decode_utf8_lossy(out) : out;
}

int64_t BpeTokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->token_text.size());
}

std::optional<int64_t> BpeTokenizer::token_to_id(std::string_view token) const {
  return impl_->lookup(token);
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  AHA_CHECK(id >= 0 && id < vocab_size(), "id_to_token: id ", id, " is out of range [0, ", vocab_size(), ")");
  return impl_->token_text[id];
}

bool BpeTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[id];
}

SpecialTokens BpeTokenizer::special_tokens() const {
  return impl_->specials;
}

std::string BpeTokenizer::token_bytes(int64_t id) const {
  AHA_CHECK(id >= 0 && id < vocab_size(), "token_bytes: id ", id, " is out of range [0, ", vocab_size(), ")");
  return impl_->token_bytes[id];
}

}  // namespace aha::text
