#include "eval/logits_file.h"

#include "ops/vocabulary_row.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace hlwq {

namespace {
constexpr char kMagic[8] = {'H', 'L', 'W', 'Q', 'L', 'G', 'T', '1'};
constexpr uint64_t kHeaderBytes = 8 + 4 + 8;
// Log-probabilities below this are stored as the floor: they carry no probability mass that
// matters for KL-divergence (e^-30 ~ 1e-13) and the floor keeps the 16-bit step small.
constexpr float kFloor = -30.0f;
}  // namespace

void log_softmax(std::span<const float> logits, std::span<float> log_probs) {
  const double log_sum = log_sum_exp(logits);
  for (size_t i = 0; i < logits.size(); ++i) log_probs[i] = static_cast<float>(logits[i] - log_sum);
}

void quantize_log_probs(std::span<const float> logits, int32_t target, QuantizedLogProbs& record) {
  quantize_log_probs(logits, target, record, log_sum_exp(logits));
}

void quantize_log_probs(std::span<const float> logits, int32_t target, QuantizedLogProbs& record, double log_sum) {
  // The log-probabilities are formed twice (for the maximum, then for the values) rather than
  // stored: a vocabulary-sized scratch row per thread costs more than the subtractions.
  const auto log_prob = [&](size_t i) { return static_cast<float>(logits[i] - log_sum); };
  float maximum = -INFINITY;  // <= 0
  for (size_t i = 0; i < logits.size(); ++i) maximum = std::max(maximum, log_prob(i));
  record.target = target;
  record.offset = std::min(kFloor, maximum);
  record.scale = (maximum - record.offset) / 65535.0f;
  record.values.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float clamped = std::max(log_prob(i), record.offset);
    record.values[i] =
        record.scale > 0 ? static_cast<uint16_t>(std::lround((clamped - record.offset) / record.scale)) : 0;
  }
}

LogitsFileWriter::LogitsFileWriter(const std::filesystem::path& path, uint32_t vocab_size)
    : path_(path), partial_path_(path.string() + ".partial"), vocab_size_(vocab_size) {
  check(!std::filesystem::exists(path), "output file exists (remove it or choose another), ", path.string());
  writer_ = std::make_unique<FileWriter>(partial_path_);
  writer_->write(std::as_bytes(std::span<const char>(kMagic, 8)));
  writer_->write(std::as_bytes(std::span<const uint32_t>(&vocab_size_, 1)));
  writer_->write(std::as_bytes(std::span<const uint64_t>(&count_, 1)));
}

void LogitsFileWriter::add(std::span<const float> logits, int32_t target) {
  check(logits.size() == vocab_size_, "logits row has ", logits.size(), " values, expected ", vocab_size_);
  quantize_log_probs(logits, target, record_);
  append(record_);
}

void LogitsFileWriter::append(const QuantizedLogProbs& record) {
  check(record.values.size() == vocab_size_, "logits row has ", record.values.size(), " values, expected ",
        vocab_size_);
  writer_->write(std::as_bytes(std::span<const int32_t>(&record.target, 1)));
  writer_->write(std::as_bytes(std::span<const float>(&record.offset, 1)));
  writer_->write(std::as_bytes(std::span<const float>(&record.scale, 1)));
  writer_->write(std::as_bytes(std::span<const uint16_t>(record.values)));
  ++count_;
}

LogitsFileWriter::~LogitsFileWriter() {
  if (!closed_) {
    writer_.reset();
    std::error_code ignored;
    std::filesystem::remove(partial_path_, ignored);
  }
}

void LogitsFileWriter::close() {
  writer_->close();
  std::FILE* file = std::fopen(partial_path_.c_str(), "r+b");
  check(file != nullptr, "cannot reopen ", partial_path_.string());
  const bool ok = std::fseek(file, 12, SEEK_SET) == 0 && std::fwrite(&count_, 8, 1, file) == 1;
  const bool closed = std::fclose(file) == 0;
  check(ok && closed, "write failed (disk full?), ", partial_path_.string());
  std::error_code error;
  std::filesystem::rename(partial_path_, path_, error);
  check(!error, "cannot move ", partial_path_.string(), " to ", path_.string(), ": ", error.message());
  closed_ = true;
}

LogitsFile LogitsFile::open(const std::filesystem::path& path) {
  LogitsFile logits;
  logits.file_ = MappedFile::open(path);
  const auto bytes = logits.file_.bytes();
  check(bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kMagic, 8) == 0,
        "not an hlwq logits file (bad magic), ", path.string());
  std::memcpy(&logits.vocab_size_, bytes.data() + 8, 4);
  std::memcpy(&logits.count_, bytes.data() + 12, 8);
  check(logits.vocab_size_ > 0 && logits.vocab_size_ < (1u << 24), "bad vocabulary size in ", path.string());
  logits.record_bytes_ = 12 + 2 * static_cast<uint64_t>(logits.vocab_size_);
  check(logits.count_ <= (bytes.size() - kHeaderBytes) / logits.record_bytes_ &&
            kHeaderBytes + logits.count_ * logits.record_bytes_ == bytes.size(),
        "logits file size does not match its header (truncated?), ", path.string());
  return logits;
}

int32_t LogitsFile::target(uint64_t index) const {
  int32_t value;
  std::memcpy(&value, file_.bytes().data() + kHeaderBytes + index * record_bytes_, 4);
  return value;
}

void LogitsFile::log_probs(uint64_t index, std::span<float> out) const {
  const std::byte* record = file_.bytes().data() + kHeaderBytes + index * record_bytes_;
  float offset, scale;
  std::memcpy(&offset, record + 4, 4);
  std::memcpy(&scale, record + 8, 4);
  for (uint32_t i = 0; i < vocab_size_; ++i) {
    uint16_t value;
    std::memcpy(&value, record + 12 + 2 * i, 2);
    out[i] = offset + scale * value;
  }
}

}  // namespace hlwq
