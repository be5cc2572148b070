// The last steps every command that writes a model folder shares (quantize, export, the prism pack):
// config.json, the input's auxiliary files (tokenizer, chat template, generation config) copied
// beside it, then the staged folder renamed into place, so a failure before this leaves nothing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include <nlohmann/json.hpp>

#include "core/staged_directory.h"

namespace hlwq {

// Writes `config` (indented) and copies `auxiliary_files` into the staged folder, commits it, and
// returns the bytes of every file in the finished folder. Throws hlwq::Error naming a file that
// could not be copied.
uint64_t finish_model_folder(StagedDirectory& staged, const nlohmann::json& config,
                             std::span<const std::filesystem::path> auxiliary_files);

}  // namespace hlwq
