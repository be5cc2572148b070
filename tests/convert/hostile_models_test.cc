// Broken and hostile model folders given to `hlwq quantize` and `hlwq export`: each is one error
// line naming the file (and the tensor where there is one), exit status 1, and nothing written
// beside the input. Weights that are merely unusual (zero rows, denormals) quantize cleanly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "convert/tiny_model.h"
#include "core/dtype.h"
#include "core/file_writer.h"
#include "io/model_folder.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

size_t line_count(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// Runs a command that must fail: exit 1, one line "hlwq: error: ..." holding every piece of
// `expected`, and the folder holding `folder_entries` entries afterwards (no output, no staging).
void expect_clean_failure(const std::string& command, const std::vector<std::string>& expected,
                          const fs::path& folder, size_t folder_entries) {
  const CommandResult result = run_hlwq(command);
  EXPECT_EQ(result.exit_code, 1) << command << "\n" << result.output;
  EXPECT_EQ(result.output.rfind("hlwq: error: ", 0), 0u) << result.output;
  EXPECT_EQ(line_count(result.output), 1u) << result.output;
  for (const std::string& piece : expected) {
    EXPECT_NE(result.output.find(piece), std::string::npos) << "missing '" << piece << "' in " << result.output;
  }
  EXPECT_EQ(count_entries(folder), folder_entries) << command;
}

// A tiny model whose tensor `poisoned` gets `value` at flat index `index` (and, to check that the
// first is named, at a later index too).
void write_model_with_value(const fs::path& folder, const std::string& poisoned, size_t index, float value) {
  write_tiny_model(folder);
  const ModelFolder model = ModelFolder::open(folder);
  std::vector<TensorDeclaration> declarations;
  std::vector<std::vector<std::byte>> contents;
  for (const std::string& name : model.tensor_names()) {
    const TensorInfo& info = model.info(name);
    declarations.push_back({name, info.dtype, info.shape});
    const auto bytes = model.data(name);
    contents.emplace_back(bytes.begin(), bytes.end());
    if (name == poisoned) {
      std::vector<float> values(info.element_count());
      convert_to_float(info.dtype, bytes, values);
      values[index] = value;
      values[index + 700] = value;
      convert_from_float(values, info.dtype, contents.back());
    }
  }
  const fs::path rewritten = folder / "model.tmp";
  {
    SafetensorsWriter writer(rewritten, declarations, {{"format", "pt"}});
    for (size_t i = 0; i < declarations.size(); ++i) writer.write(declarations[i].name, contents[i]);
    writer.close();
  }
  fs::rename(rewritten, folder / "model.safetensors");
}

TEST(HostileModels, NonFiniteWeightNamesTheTensorAndTheFirstBadIndex) {
  const std::string tensor = "model.layers.1.mlp.up_proj.weight";  // [256, 192]
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    TemporaryFolder folder;
    write_model_with_value(folder.path() / "dense", tensor, 5 * 192 + 17, bad);
    const std::string dense = (folder.path() / "dense").string();
    expect_clean_failure("quantize -m " + dense + " -o " + (folder.path() / "q").string() + " --threads 4",
                         {"non-finite weight", "at row 5, column 17", "tensor " + tensor,
                          (folder.path() / "dense" / "model.safetensors").string()},
                         folder.path(), 1);
  }
}

// The f16 norms of an HLWQ folder, all of them.
std::vector<float> all_norms(const fs::path& folder) {
  const ModelFolder model = ModelFolder::open(folder);
  std::vector<float> norms;
  for (const std::string& name : model.tensor_names()) {
    if (!name.ends_with(".hlwq_norms")) continue;
    const auto bytes = model.data(name);
    for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
      uint16_t bits;
      std::memcpy(&bits, bytes.data() + i, 2);
      norms.push_back(f16_to_float(bits));
    }
  }
  return norms;
}

TEST(HostileModels, ZeroRowsAndBlocksAndDenormalsQuantizeToFiniteNorms) {
  TemporaryFolder folder;
  const fs::path dense = folder.path() / "dense";
  write_tiny_model(dense);
  const ModelFolder model = ModelFolder::open(dense);
  std::vector<TensorDeclaration> declarations;
  std::vector<std::vector<std::byte>> contents;
  for (const std::string& name : model.tensor_names()) {
    const TensorInfo& info = model.info(name);
    declarations.push_back({name, info.dtype, info.shape});
    const auto bytes = model.data(name);
    contents.emplace_back(bytes.begin(), bytes.end());
    if (info.shape.size() != 2) continue;
    std::vector<float> values(info.element_count());
    convert_to_float(info.dtype, bytes, values);
    const int64_t columns = info.shape[1];
    for (int64_t c = 0; c < columns; ++c) values[c] = 0.0f;                 // row 0: all zero
    for (int64_t c = 0; c < 64; ++c) values[columns + c] = 0.0f;            // row 1: a zero block
    for (int64_t c = 0; c < columns; ++c) values[2 * columns + c] = 1e-39f * ((c % 3) - 1);  // row 2: denormals
    for (int64_t c = 0; c < columns; ++c) values[3 * columns + c] = std::numeric_limits<float>::denorm_min();
    convert_from_float(values, info.dtype, contents.back());
  }
  const fs::path edited = folder.path() / "edited";
  fs::create_directory(edited);
  for (const char* file : {"config.json", "tokenizer.json"}) fs::copy_file(dense / file, edited / file);
  {
    SafetensorsWriter writer(edited / "model.safetensors", declarations, {{"format", "pt"}});
    for (size_t i = 0; i < declarations.size(); ++i) writer.write(declarations[i].name, contents[i]);
    writer.close();
  }
  for (const char* block : {"64", "128"}) {
    const fs::path out = folder.path() / (std::string("q") + block);
    const CommandResult result =
        run_hlwq("quantize -m " + edited.string() + " -o " + out.string() + " --block " + block + " --threads 3");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const std::vector<float> norms = all_norms(out);
    ASSERT_FALSE(norms.empty());
    for (const float norm : norms) ASSERT_TRUE(std::isfinite(norm) && norm >= 0) << norm;
    // Dequantized (a BF16 export), every weight is finite, and the zero row comes back zero.
    const fs::path bf16 = folder.path() / (std::string("bf16-") + block);
    const CommandResult exported = run_hlwq("export -m " + out.string() + " -o " + bf16.string() + " --to bf16");
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    const ModelFolder dequantized = ModelFolder::open(bf16);
    const TensorInfo& q_proj = dequantized.info("model.layers.0.self_attn.q_proj.weight");
    std::vector<float> values(q_proj.element_count());
    convert_to_float(q_proj.dtype, dequantized.data(q_proj.name), values);
    for (const float value : values) ASSERT_TRUE(std::isfinite(value));
    for (int64_t c = 0; c < q_proj.shape[1]; ++c) EXPECT_EQ(values[c], 0.0f) << c;
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(values[q_proj.shape[1] + c], 0.0f) << c;
  }
}

TEST(HostileModels, ShapesThatContradictConfig) {
  TemporaryFolder folder;
  const fs::path dense = folder.path() / "dense";
  write_tiny_model(dense);
  nlohmann::json config = nlohmann::json::parse(std::ifstream(dense / "config.json"));
  const nlohmann::json original = config;
  const std::string file = (dense / "model.safetensors").string();
  const std::string out = (folder.path() / "out").string();
  config["hidden_size"] = 128;
  write_text_file(dense / "config.json", config.dump());
  expect_clean_failure("quantize -m " + dense.string() + " -o " + out,
                       {"tensor model.embed_tokens.weight has shape [300, 192]", "hidden_size 128", file},
                       folder.path(), 1);
  expect_clean_failure("export -m " + dense.string() + " -o " + out + " --to bf16",
                       {"tensor model.embed_tokens.weight", "hidden_size 128", file}, folder.path(), 1);
  config = original;
  config["intermediate_size"] = 512;
  write_text_file(dense / "config.json", config.dump());
  expect_clean_failure("quantize -m " + dense.string() + " -o " + out,
                       {"tensor model.layers.0.mlp.gate_proj.weight has shape [256, 192]", "intermediate_size 512"},
                       folder.path(), 1);
  // Missing, zero, negative and absurd sizes.
  for (const nlohmann::json& vocab : {nlohmann::json(0), nlohmann::json(-5), nlohmann::json(int64_t{1} << 40),
                                      nlohmann::json("300"), nlohmann::json(3.5)}) {
    config = original;
    config["vocab_size"] = vocab;
    write_text_file(dense / "config.json", config.dump());
    expect_clean_failure("quantize -m " + dense.string() + " -o " + out,
                         {"vocab_size", (dense / "config.json").string()}, folder.path(), 1);
  }
}

// A safetensors file with the given header (8-byte little-endian length, JSON, then `data_bytes`).
void write_safetensors_with_header(const fs::path& path, const std::string& header, size_t data_bytes) {
  std::string bytes(8, '\0');
  const uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  bytes += header;
  bytes.append(data_bytes, '\0');
  write_text_file(path, bytes);
}

TEST(HostileModels, SafetensorsSizesAndOffsetsThatOverflow) {
  const std::vector<std::string> headers = {
      // End offset near 2^64.
      R"({"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,18446744073709551615]}})",
      // Offsets that wrap: begin + size overflows.
      R"({"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[18446744073709551608,0]}})",
      // A shape whose element count times 4 overflows 64 bits.
      R"({"a.weight":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}})",
      R"({"a.weight":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
      // Negative and non-integer dimensions.
      R"({"a.weight":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})",
      R"({"a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,1e30]}})",
  };
  for (const std::string& header : headers) {
    TemporaryFolder folder;
    const fs::path dense = folder.path() / "dense";
    write_tiny_model(dense);
    const fs::path file = dense / "model.safetensors";
    write_safetensors_with_header(file, header, 16);
    expect_clean_failure("quantize -m " + dense.string() + " -o " + (folder.path() / "q").string(),
                         {file.string(), "a.weight"}, folder.path(), 1);
  }
}

// Two shards (no index) holding the same tensor, an index naming a missing shard, an index naming
// a shard outside the folder, and a shard that is a link to a file outside the folder.
TEST(HostileModels, ShardsThatAreMissingDuplicatedOrOutsideTheFolder) {
  TemporaryFolder folder;
  const fs::path dense = folder.path() / "dense";
  write_tiny_model(dense);
  const std::string out = (folder.path() / "q").string();
  const auto quantize = "quantize -m " + dense.string() + " -o " + out;

  fs::copy_file(dense / "model.safetensors", dense / "model-00002-of-00002.safetensors");
  fs::rename(dense / "model.safetensors", dense / "model-00001-of-00002.safetensors");
  expect_clean_failure(quantize, {"tensor \"model.embed_tokens.weight\" is in both", "model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors"},
                       folder.path(), 1);
  fs::remove(dense / "model-00002-of-00002.safetensors");

  const nlohmann::json index_missing = {
      {"weight_map", {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                      {"lm_head.weight", "model-00002-of-00002.safetensors"}}}};
  write_text_file(dense / "model.safetensors.index.json", index_missing.dump());
  expect_clean_failure(quantize, {"missing weight shard", "model-00002-of-00002.safetensors", dense.string()},
                       folder.path(), 1);

  const nlohmann::json index_outside = {{"weight_map", {{"model.embed_tokens.weight", "../x.safetensors"}}}};
  write_text_file(dense / "model.safetensors.index.json", index_outside.dump());
  expect_clean_failure(quantize, {"outside the model folder", "model.safetensors.index.json"}, folder.path(), 1);
  fs::remove(dense / "model.safetensors.index.json");

  // A link that leaves the folder (to a real, valid weight file elsewhere).
  fs::create_directory(folder.path() / "elsewhere");
  fs::rename(dense / "model-00001-of-00002.safetensors", folder.path() / "elsewhere" / "model.safetensors");
  fs::create_symlink("../elsewhere/model.safetensors", dense / "model.safetensors");
  expect_clean_failure(quantize, {"outside the model folder", (dense / "model.safetensors").string()},
                       folder.path(), 2);
  // A link inside the folder is fine.
  fs::remove(dense / "model.safetensors");
  fs::rename(folder.path() / "elsewhere" / "model.safetensors", dense / "weights.bin");
  fs::create_symlink("weights.bin", dense / "model.safetensors");
  const CommandResult inside = run_hlwq(quantize);
  EXPECT_EQ(inside.exit_code, 0) << inside.output;
}

}  // namespace
}  // namespace hlwq
