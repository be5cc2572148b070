// Small helpers shared by the subcommands: flag value parsing and output.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"

namespace hlwq::cli {

inline DType parse_float_dtype(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  if (name == "f32") return DType::F32;
  fail("unknown dtype '", name, "' (use bf16, f16 or f32)");
}

// The first check of a command that reads a model folder: a clear line when it is not there.
inline void check_model_folder(const std::string& folder) {
  check(std::filesystem::is_directory(folder), "the model folder does not exist, ", folder);
}

inline void print_json(const nlohmann::json& value) {
  std::printf("%s\n", value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace hlwq::cli
