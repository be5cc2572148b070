#include "convert/gguf_import.h"

#include <gtest/gtest.h>

#include "convert/model_weights.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/model_folder.h"
#include "core/file_writer.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(GgufImport, TensorNames) {
  EXPECT_EQ(hf_tensor_name("token_embd.weight"), "model.embed_tokens.weight");
  EXPECT_EQ(hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(hf_tensor_name("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(hf_tensor_name("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(hf_tensor_name("blk.0.attn_k.bias"), "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(hf_tensor_name("blk.3.ffn_down.weight"), "model.layers.3.mlp.down_proj.weight");
  EXPECT_EQ(hf_tensor_name("blk.3.attn_k_norm.weight"), "model.layers.3.self_attn.k_norm.weight");
  EXPECT_EQ(hf_tensor_name("rope_freqs.weight"), std::nullopt);
  EXPECT_THROW(hf_tensor_name("blk.0.ffn_gate_exps.weight"), Error);
}

// llama.cpp's converter applies, per head, reshape(2, d/2) -> swap -> reshape to the rows
// (numpy: w.reshape(heads, 2, d/2, cols).swapaxes(1, 2)). Applying that and then undoing must
// give back the original rows.
TEST(GgufImport, UndoRopePermutationInvertsTheConverter) {
  const int64_t heads = 3, head_dim = 8, rows = heads * head_dim, columns = 5;
  const std::vector<float> hf = random_normal(rows * columns, 3);
  std::vector<float> gguf(hf.size());
  for (int64_t head = 0; head < heads; ++head)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t i = 0; i < head_dim / 2; ++i)
        for (int64_t c = 0; c < columns; ++c)
          gguf[((head * head_dim) + i * 2 + half) * columns + c] =
              hf[((head * head_dim) + half * (head_dim / 2) + i) * columns + c];
  std::vector<float> back(hf.size());
  undo_rope_permutation(gguf, rows, columns, heads, back);
  EXPECT_EQ(back, hf);
  EXPECT_THROW(undo_rope_permutation(gguf, rows, columns, 5, back), Error);
}

TEST(GgufImport, ConfigFromMetadata) {
  const nlohmann::json metadata = {
      {"general.architecture", "qwen3"}, {"qwen3.embedding_length", 1024}, {"qwen3.block_count", 28},
      {"qwen3.feed_forward_length", 3072}, {"qwen3.attention.head_count", 16},
      {"qwen3.attention.head_count_kv", 8}, {"qwen3.attention.key_length", 128},
      {"qwen3.rope.freq_base", 1000000.0}, {"qwen3.attention.layer_norm_rms_epsilon", 1e-6},
      {"qwen3.context_length", 40960}, {"tokenizer.ggml.eos_token_id", 151645}};
  const nlohmann::json config = hf_config_from_gguf(metadata, 151936, true, DType::BF16);
  EXPECT_EQ(config["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(config["head_dim"], 128);
  EXPECT_EQ(config["num_key_value_heads"], 8);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_EQ(config["eos_token_id"], 151645);
  nlohmann::json unknown = metadata;
  unknown["general.architecture"] = "rwkv6";
  try {
    hf_config_from_gguf(unknown, 10, true, DType::BF16);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("llama, qwen2, qwen3"), std::string::npos);
  }
}

TEST(GgufImport, DemoModel) {
  const auto gguf_path = demo_gguf_path();
  if (gguf_path.empty()) GTEST_SKIP() << "demo model not fetched (scripts/fetch_demo_model.sh)";
  TemporaryFolder folder;
  ImportOptions options;
  options.dtype = DType::F32;
  const ImportSummary summary = import_gguf(gguf_path, folder.path() / "model", options);
  EXPECT_EQ(summary.architecture, "llama");
  EXPECT_EQ(summary.tensors, 272u);
  const ModelWeights model = ModelWeights::open(folder.path() / "model");
  const auto& config = model.folder().config();
  EXPECT_EQ(config["hidden_size"], 576);
  EXPECT_EQ(config["num_hidden_layers"], 30);
  EXPECT_EQ(config["num_key_value_heads"], 3);
  EXPECT_EQ(config["vocab_size"], 49152);
  EXPECT_EQ(config["tie_word_embeddings"], true);
  EXPECT_TRUE(std::filesystem::exists(folder.path() / "model" / "tokenizer.json"));
  const GgufFile gguf = GgufFile::open(gguf_path);
  ThreadPool pool(1);
  // v_proj is stored unpermuted; q_proj rows come back in HF order.
  const std::vector<float> v = gguf.dequantize(*gguf.find("blk.4.attn_v.weight"));
  EXPECT_EQ(model.read_float(*model.find("model.layers.4.self_attn.v_proj.weight"), pool), v);
  const std::vector<float> q = gguf.dequantize(*gguf.find("blk.4.attn_q.weight"));
  std::vector<float> q_hf(q.size());
  undo_rope_permutation(q, 576, 576, 9, q_hf);
  EXPECT_EQ(model.read_float(*model.find("model.layers.4.self_attn.q_proj.weight"), pool), q_hf);
  EXPECT_NE(q_hf, q);
}

TEST(GgufImport, BadInput) {
  TemporaryFolder folder;
  EXPECT_THROW(import_gguf(folder.path() / "missing.gguf", folder.path() / "out", ImportOptions{}), Error);
  const auto garbage = folder.path() / "garbage.gguf";
  write_text_file(garbage, "GGUF this is not a gguf file at all");
  EXPECT_THROW(import_gguf(garbage, folder.path() / "out", ImportOptions{}), Error);
  EXPECT_FALSE(std::filesystem::exists(folder.path() / "out"));
}

}  // namespace
}  // namespace hlwq
