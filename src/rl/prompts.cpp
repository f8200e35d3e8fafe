#include "aha/rl/prompts.h"

#include <random>

#include "aha/core/error.h"
#include "aha/io/jsonl.h"
#include "aha/text/template.h"

namespace aha::rl {

namespace {

constexpr uint64_t kEvalSalt = 0xE7A1;

// A seeded Fisher-Yates permutation of 0..n-1 (the same on every platform).
std::vector<size_t> permutation(size_t n, uint64_t seed) {
  std::vector<size_t> p(n);
  for (size_t i = 0; i < n; ++i)
    p[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i)
    std::swap(p[i - 1], p[rng() % i]);
  return p;
}

std::vector<Json> read_records(const std::string& path, const DataSection& d) {
  std::vector<Json> out;
  for (auto& r : io::read_jsonl(path)) {
    AHA_CHECK(r.value.is_object(), path, ":", r.line, ": a prompt record must be a JSON object");
    AHA_CHECK(r.value.contains(d.prompt_field), path, ":", r.line, ": no field \"", d.prompt_field,
              "\" (data.prompt_field)");
    Json fields = r.value;
    if (d.prompt_field != "question") fields["question"] = r.value[d.prompt_field];
    if (d.answer_field != "answer" && r.value.contains(d.answer_field))
      fields["answer"] = r.value[d.answer_field];
    fields["_line"] = r.line;
    out.push_back(std::move(fields));
  }
  AHA_CHECK(!out.empty(), path, ": no prompt records");
  return out;
}

}  // namespace

std::vector<std::string> held_out_questions(const DataSection& data) {
  std::vector<std::string> out;
  if (data.source != "task") return out;
  auto task = make_task(data.task, data.task_params);
  std::unordered_set<std::string> seen;
  const uint64_t seed = item_seed(data.seed, 0, kEvalSalt);
  for (uint64_t i = 0; static_cast<int64_t>(out.size()) < data.eval_size; ++i) {
    AHA_CHECK(i < static_cast<uint64_t>(data.eval_size) * 1000 + 1000, "task ", data.task, ": cannot find ",
              data.eval_size, " distinct held-out questions (data.eval_size is too large for the task)");
    std::string q = task->make(seed, i)["question"].get<std::string>();
    if (seen.insert(q).second) out.push_back(q);
  }
  return out;
}

VectorPrompts::VectorPrompts(std::vector<Prompt> train, std::vector<Prompt> eval)
    : train_(std::move(train)), eval_(std::move(eval)) {
  AHA_CHECK(!train_.empty(), "VectorPrompts: no training prompts");
}

std::vector<Prompt> VectorPrompts::next(int64_t n) {
  std::vector<Prompt> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(train_[drawn_++ % train_.size()]);
  return out;
}

Json VectorPrompts::state() const {
  return {{"drawn", drawn_}};
}

void VectorPrompts::restore(const Json& state) {
  drawn_ = state.at("drawn").get<uint64_t>();
}

PromptSource::PromptSource(const DataSection& data)
    : data_(data), template_(text::resolve_template(data.template_name)) {
  if (data.source == "task") {
    task_ = make_task(data.task, data.task_params);
    const uint64_t seed = item_seed(data.seed, 0, kEvalSalt);
    for (uint64_t i = 0; static_cast<int64_t>(eval_.size()) < data.eval_size; ++i) {
      AHA_CHECK(i < static_cast<uint64_t>(data.eval_size) * 1000 + 1000, "task ", data.task, ": cannot find ",
                data.eval_size, " distinct held-out questions (data.eval_size is too large for the task)");
      Json fields = task_->make(seed, i);
      if (eval_questions_.insert(fields["question"].get<std::string>()).second)
        eval_.push_back(make_prompt(std::move(fields)));
    }
    return;
  }
  AHA_CHECK(data.source == "jsonl", "data.source must be task or jsonl, got \"", data.source, "\"");
  AHA_CHECK(!data.path.empty(), "data.source is jsonl but data.path is empty");
  records_ = read_records(data.path, data);
  if (!data.eval_path.empty()) {
    for (auto& f : read_records(data.eval_path, data))
      eval_.push_back(make_prompt(std::move(f)));
  } else if (data.eval_size > 0) {
    AHA_CHECK(data.eval_size < static_cast<int64_t>(records_.size()), data.path, " has ", records_.size(),
              " records: too few to hold out data.eval_size = ", data.eval_size, " and still train");
    std::vector<size_t> p = permutation(records_.size(), item_seed(data.seed, 0, kEvalSalt));
    std::vector<bool> held(records_.size(), false);
    for (int64_t i = 0; i < data.eval_size; ++i)
      held[p[static_cast<size_t>(i)]] = true;
    std::vector<Json> train;
    for (size_t i = 0; i < records_.size(); ++i) {
      if (held[i]) continue;
      train.push_back(records_[i]);
    }
    for (int64_t i = 0; i < data.eval_size; ++i)
      eval_.push_back(make_prompt(records_[p[static_cast<size_t>(i)]]));
    records_ = std::move(train);
  }
}

Prompt PromptSource::make_prompt(Json fields) const {
  Prompt p;
  p.text = text::render(template_, fields);
  p.fields = std::move(fields);
  return p;
}

void PromptSource::shuffle_epoch(uint64_t epoch) {
  if (order_epoch_ == epoch) return;
  if (data_.shuffle) {
    order_ = permutation(records_.size(), item_seed(data_.seed, epoch, 0x5EED));
  } else {
    order_.resize(records_.size());
    for (size_t i = 0; i < order_.size(); ++i)
      order_[i] = i;
  }
  order_epoch_ = epoch;
}

std::vector<Prompt> PromptSource::next(int64_t n) {
  std::vector<Prompt> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    if (task_) {
      for (;;) {
        Json fields = task_->make(data_.seed, task_index_++);
        if (eval_questions_.count(fields["question"].get<std::string>())) continue;
        out.push_back(make_prompt(std::move(fields)));
        break;
      }
    } else {
      const uint64_t size = records_.size();
      shuffle_epoch(drawn_ / size);
      out.push_back(make_prompt(records_[order_[drawn_ % size]]));
    }
    ++drawn_;
  }
  return out;
}

Json PromptSource::state() const {
  return Json{{"drawn", drawn_}, {"task_index", task_index_}};
}

void PromptSource::restore(const Json& state) {
  AHA_CHECK(state.is_object() && state.contains("drawn"), "prompt position: expected {\"drawn\": N, ...}");
  drawn_ = state["drawn"].get<uint64_t>();
  task_index_ = state.value("task_index", uint64_t{0});
}

int64_t PromptSource::train_size() const {
  return task_ ? -1 : static_cast<int64_t>(records_.size());
}

}  // namespace aha::rl
