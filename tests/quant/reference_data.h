// Test helpers for comparing hlwq's quantizers with the real libraries: raw little-endian files
// (fixtures, and the exchange with scripts/reference_quantizers.py), dtype bit patterns, and
// running that script when its Python packages are importable.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace hlwq {

// Whole file as an array of T; empty (and a failed assertion by the caller) when absent.
template <class T>
std::vector<T> read_raw(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

template <class T>
void write_raw(const std::filesystem::path& path, std::span<const T> values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

inline float float_of_bits(uint16_t bits, DType dtype) {
  return dtype == DType::BF16 ? bf16_to_float(bits) : f16_to_float(bits);
}

inline uint16_t bits_of_float(float value, DType dtype) {
  return dtype == DType::BF16 ? float_to_bf16(value) : float_to_f16(value);
}

inline std::vector<float> floats_of_bits(std::span<const uint16_t> bits, DType dtype) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = float_of_bits(bits[i], dtype);
  return values;
}

inline std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(HLWQ_SOURCE_DIR) / relative;
}

// True when python3 finds every module of MODULES ("mlx.core" or "torch compressed_tensors") without
// importing them (importing torch and compressed_tensors alone takes seconds).
inline bool python_has_modules(const std::string& modules) {
  const std::string command =
      "python3 -c \"import importlib.util, sys; sys.exit(not all(importlib.util.find_spec(m) for m in '" +
      modules + "'.split()))\" >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// Runs scripts/reference_quantizers.py on a job file; returns its exit status (0 on success).
inline int run_reference_quantizers(const std::filesystem::path& job, const std::filesystem::path& log) {
  const std::string command = "python3 '" + source_path("scripts/reference_quantizers.py").string() + "' '" +
                              job.string() + "' >'" + log.string() + "' 2>&1";
  return std::system(command.c_str());
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace hlwq
