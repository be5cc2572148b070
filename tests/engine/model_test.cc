// Model loading: every expected tensor checked by name and shape; embedding rows; tied output head.
#include "engine/model.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "engine/engine_fixture.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace hlwq {
namespace {

// Copies the qwen2 fixture with one tensor dropped or reshaped, and returns the load error.
std::string load_error_after(const std::string& tensor_name, bool reshape) {
  TemporaryFolder temporary;
  const std::filesystem::path source = engine_fixture("qwen2");
  std::filesystem::copy_file(source / "config.json", temporary.path() / "config.json");
  const SafetensorsFile input = SafetensorsFile::open(source / "model.safetensors");
  std::vector<TensorDeclaration> declarations;
  for (const TensorInfo& info : input.tensors()) {
    if (info.name == tensor_name && !reshape) continue;
    TensorDeclaration declaration{info.name, info.dtype, info.shape};
    if (info.name == tensor_name) declaration.shape = {info.shape[0] / 2, static_cast<int64_t>(
                                                           info.shape.size() == 2 ? info.shape[1] * 2 : 2)};
    declarations.push_back(declaration);
  }
  {
    SafetensorsWriter writer(temporary.path() / "model.safetensors", declarations, {});
    for (const TensorDeclaration& declaration : declarations) writer.write(declaration.name, input.data(*input.find(declaration.name)));
    writer.close();
  }
  ThreadPool pool(1);
  try {
    Model::load(temporary.path(), pool);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(Model, NamesAMissingTensor) {
  for (const std::string name : {"model.layers.1.self_attn.k_proj.bias", "model.layers.0.mlp.down_proj.weight",
                                 "model.norm.weight", "lm_head.weight", "model.embed_tokens.weight"}) {
    const std::string message = load_error_after(name, false);
    EXPECT_NE(message.find("missing tensor " + name), std::string::npos) << message;
  }
}

TEST(Model, NamesAMisshapenTensor) {
  for (const std::string name : {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.input_layernorm.weight"}) {
    const std::string message = load_error_after(name, true);
    EXPECT_NE(message.find("tensor " + name + " has shape"), std::string::npos) << message;
  }
}

TEST(Model, EmbedsRowsOfTheEmbedding) {
  ThreadPool pool(1);
  const Model model = Model::load(engine_fixture("llama_tied"), pool);
  const SafetensorsFile file = SafetensorsFile::open(engine_fixture("llama_tied") / "model.safetensors");
  const auto table = file.data(*file.find("model.embed_tokens.weight"));
  const int64_t hidden = model.config().hidden_size;
  std::vector<float> row(hidden), expected(hidden);
  for (int64_t token : {0, 7, 159}) {
    model.embed(token, row);
    convert_to_float(DType::F32, table.subspan(token * hidden * 4, hidden * 4), expected);
    EXPECT_EQ(row, expected);
  }
  EXPECT_THROW(model.embed(160, row), Error);
  // Tied: the output head is the embedding matrix.
  EXPECT_EQ(&model.lm_head(), &model.embedding());
}

}  // namespace
}  // namespace hlwq
