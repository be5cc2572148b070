#include "convert/gguf_import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <tuple>

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
  EXPECT_THROW(hf_tensor_name("blk.0.post_ffw_norm.weight"), Error);  // no llama counterpart
}

// Gemma 3's four norms per layer (llama.cpp's names -> transformers' Gemma3DecoderLayer).
TEST(GgufImport, Gemma3TensorNames) {
  EXPECT_EQ(hf_tensor_name("blk.2.attn_norm.weight", "gemma3"), "model.layers.2.input_layernorm.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.post_attention_norm.weight", "gemma3"),
            "model.layers.2.post_attention_layernorm.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.ffn_norm.weight", "gemma3"), "model.layers.2.pre_feedforward_layernorm.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.post_ffw_norm.weight", "gemma3"),
            "model.layers.2.post_feedforward_layernorm.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.attn_q_norm.weight", "gemma3"), "model.layers.2.self_attn.q_norm.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.ffn_gate.weight", "gemma3"), "model.layers.2.mlp.gate_proj.weight");
  EXPECT_EQ(hf_tensor_name("blk.2.ffn_norm.weight"), "model.layers.2.post_attention_layernorm.weight");
}

// The Gemma 3 270M metadata: what llama.cpp fixes rather than stores comes back in config.json.
TEST(GgufImport, Gemma3ConfigFromMetadata) {
  nlohmann::json metadata = {
      {"general.architecture", "gemma3"}, {"gemma3.embedding_length", 640}, {"gemma3.block_count", 18},
      {"gemma3.feed_forward_length", 2048}, {"gemma3.attention.head_count", 4},
      {"gemma3.attention.head_count_kv", 1}, {"gemma3.attention.key_length", 256},
      {"gemma3.rope.freq_base", 1000000.0}, {"gemma3.attention.sliding_window", 512},
      {"gemma3.context_length", 32768}};
  const nlohmann::json config = hf_config_from_gguf(metadata, 262144, true, DType::F32);
  EXPECT_EQ(config["architectures"][0], "Gemma3ForCausalLM");
  EXPECT_EQ(config["model_type"], "gemma3_text");
  EXPECT_EQ(config["hidden_activation"], "gelu_pytorch_tanh");
  EXPECT_FALSE(config.contains("hidden_act"));
  EXPECT_EQ(config["query_pre_attn_scalar"], 256);
  EXPECT_EQ(config["sliding_window"], 512);
  EXPECT_EQ(config["rope_local_base_freq"], 10000.0);
  ASSERT_EQ(config["layer_types"].size(), 18u);
  EXPECT_EQ(config["layer_types"][4], "sliding_attention");
  EXPECT_EQ(config["layer_types"][5], "full_attention");
  EXPECT_EQ(config["layer_types"][17], "full_attention");
  metadata["gemma3.final_logit_softcapping"] = 30.0;
  EXPECT_THROW(hf_config_from_gguf(metadata, 262144, true, DType::F32), Error);
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

// The metadata llama.cpp writes for a small model of `arch`.
nlohmann::json small_metadata(const std::string& arch) {
  return {{"general.architecture", arch},          {arch + ".embedding_length", 64},
          {arch + ".block_count", 2},              {arch + ".feed_forward_length", 128},
          {arch + ".attention.head_count", 4},     {arch + ".attention.head_count_kv", 2},
          {arch + ".rope.freq_base", 1000000.0}};
}

// Expects `body` to throw one hlwq::Error line containing `fragment` and ending with ", source".
template <class Body>
void expect_error(Body body, std::string_view fragment, std::string_view source) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_TRUE(message.ends_with(concat(", ", source))) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(GgufImport, RopeScalingFromMetadata) {
  nlohmann::json metadata = small_metadata("qwen2");
  EXPECT_FALSE(hf_config_from_gguf(metadata, 100, true, DType::BF16).contains("rope_scaling"));
  metadata["qwen2.rope.scaling.type"] = "none";
  EXPECT_FALSE(hf_config_from_gguf(metadata, 100, true, DType::BF16).contains("rope_scaling"));
  // What llama.cpp writes for Qwen2.5 with YaRN enabled (factor 4 over 32768 positions).
  metadata["qwen2.rope.scaling.type"] = "yarn";
  metadata["qwen2.rope.scaling.factor"] = 4.0;
  metadata["qwen2.rope.scaling.original_context_length"] = 32768;
  const nlohmann::json yarn = hf_config_from_gguf(metadata, 100, true, DType::BF16)["rope_scaling"];
  EXPECT_EQ(yarn["rope_type"], "yarn");
  EXPECT_EQ(yarn["factor"], 4.0);
  EXPECT_EQ(yarn["original_max_position_embeddings"], 32768);
  metadata["qwen2.rope.scaling.type"] = "linear";
  metadata["qwen2.rope.scaling.factor"] = 2.0;
  const nlohmann::json linear = hf_config_from_gguf(metadata, 100, true, DType::BF16)["rope_scaling"];
  EXPECT_EQ(linear["rope_type"], "linear");
  EXPECT_EQ(linear["factor"], 2.0);
  EXPECT_FALSE(linear.contains("original_max_position_embeddings"));
  // Dropping a scaling silently would change every logit: unknown types and missing keys fail.
  metadata["qwen2.rope.scaling.type"] = "longrope";
  EXPECT_THROW(hf_config_from_gguf(metadata, 100, true, DType::BF16), Error);
  metadata["qwen2.rope.scaling.type"] = "yarn";
  metadata.erase("qwen2.rope.scaling.original_context_length");
  EXPECT_THROW(hf_config_from_gguf(metadata, 100, true, DType::BF16), Error);
}

// Plain transcription of Llama 3's rope scaling (HF _compute_llama3_parameters, llama.cpp's
// rope_freqs.weight): the divisor of each rotary frequency.
std::vector<float> llama3_divisors(int64_t head_dim, double theta, double factor, double low, double high,
                                   double original_context) {
  std::vector<float> divisors;
  for (int64_t index = 0; index < head_dim; index += 2) {
    const double frequency = 1.0 / std::pow(theta, static_cast<double>(index) / head_dim);
    const double wavelength = 2 * std::numbers::pi / frequency;
    double divisor;
    if (wavelength < original_context / high) {
      divisor = 1;
    } else if (wavelength > original_context / low) {
      divisor = factor;
    } else {
      const double smooth = (original_context / wavelength - low) / (high - low);
      divisor = 1 / ((1 - smooth) / factor + smooth);
    }
    divisors.push_back(static_cast<float>(divisor));
  }
  return divisors;
}

TEST(GgufImport, Llama3RopeScalingFromDivisors) {
  // Llama 3.1 8B (head_dim 128) and 3.2 1B (head_dim 64): low 1, high 4 over 8192 positions.
  for (const auto& [head_dim, factor] : std::vector<std::pair<int64_t, double>>{{128, 8.0}, {64, 32.0}}) {
    const auto scaling = llama3_rope_scaling(llama3_divisors(head_dim, 500000, factor, 1, 4, 8192), 500000);
    ASSERT_TRUE(scaling.has_value());
    EXPECT_EQ((*scaling)["rope_type"], "llama3");
    EXPECT_EQ((*scaling)["factor"], factor);
    EXPECT_EQ((*scaling)["low_freq_factor"], 1.0);
    EXPECT_EQ((*scaling)["high_freq_factor"], 4.0);
    EXPECT_EQ((*scaling)["original_max_position_embeddings"], 8192);
  }
  // Other bands are fitted: the same low / high when the original context is 8192, and an
  // equivalent pair (same band edges original / low, original / high) when it is not.
  for (const auto& [low, high, original] :
       std::vector<std::tuple<double, double, double>>{{1.5, 6.0, 8192}, {1.0, 4.0, 16384}, {0.5, 3.0, 4096}}) {
    const std::vector<float> divisors = llama3_divisors(128, 500000, 16, low, high, original);
    const auto scaling = llama3_rope_scaling(divisors, 500000);
    ASSERT_TRUE(scaling.has_value());
    const double fitted_low = (*scaling)["low_freq_factor"], fitted_high = (*scaling)["high_freq_factor"];
    EXPECT_NEAR(8192 / fitted_low, original / low, 1e-3 * original / low);
    EXPECT_NEAR(8192 / fitted_high, original / high, 1e-3 * original / high);
    const std::vector<float> again = llama3_divisors(128, 500000, 16, fitted_low, fitted_high, 8192);
    for (size_t i = 0; i < divisors.size(); ++i) EXPECT_NEAR(again[i], divisors[i], 1e-4 * divisors[i]) << i;
  }
  EXPECT_EQ(llama3_rope_scaling(std::vector<float>(32, 1.0f), 10000), std::nullopt);
  // Divisors no llama3 scaling produces: random, rising then falling, or ending below 1.
  std::vector<float> noisy = llama3_divisors(128, 500000, 8, 1, 4, 8192);
  const std::vector<float> noise = random_normal(noisy.size(), 11, 0.3f);
  for (size_t i = 0; i < noisy.size(); ++i) noisy[i] += std::abs(noise[i]);
  expect_error([&] { llama3_rope_scaling(noisy, 500000); }, "do not follow llama3 rope scaling", "rope_freqs.weight");
  std::vector<float> bump(64, 1.0f);
  bump[40] = 3;
  bump.back() = 2;
  EXPECT_THROW(llama3_rope_scaling(bump, 500000), Error);
  std::vector<float> shrinking(64, 1.0f);
  shrinking.back() = 0.5f;
  EXPECT_THROW(llama3_rope_scaling(shrinking, 500000), Error);
  EXPECT_THROW(llama3_rope_scaling({}, 500000), Error);
}

// Tensor names of a 2-layer GGUF with biases on `biased` projections of every layer.
std::vector<std::string> names_with_biases(const std::vector<std::string>& biased) {
  std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
  for (int layer = 0; layer < 2; ++layer) {
    for (const char* kind : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      names.push_back(concat("blk.", layer, ".", kind, ".weight"));
    for (const std::string& kind : biased) names.push_back(concat("blk.", layer, ".", kind, ".bias"));
  }
  return names;
}

TEST(GgufImport, BiasFlagsFollowTheTensors) {
  const auto config_for = [](const std::string& arch, const std::vector<std::string>& biased) {
    nlohmann::json config = hf_config_from_gguf(small_metadata(arch), 100, true, DType::BF16);
    set_bias_flags(config, names_with_biases(biased), "test.gguf");
    return config;
  };
  EXPECT_EQ(config_for("llama", {})["attention_bias"], false);
  EXPECT_EQ(config_for("llama", {})["mlp_bias"], false);
  const nlohmann::json llama_attention = config_for("llama", {"attn_q", "attn_k", "attn_v", "attn_output"});
  EXPECT_EQ(llama_attention["attention_bias"], true);
  EXPECT_EQ(llama_attention["mlp_bias"], false);
  const nlohmann::json llama_mlp = config_for("llama", {"ffn_gate", "ffn_up", "ffn_down"});
  EXPECT_EQ(llama_mlp["attention_bias"], false);
  EXPECT_EQ(llama_mlp["mlp_bias"], true);
  EXPECT_EQ(config_for("qwen3", {"attn_q", "attn_k", "attn_v", "attn_output"})["attention_bias"], true);
  EXPECT_EQ(config_for("qwen3", {})["attention_bias"], false);
  EXPECT_FALSE(config_for("qwen2", {"attn_q", "attn_k", "attn_v"}).contains("attention_bias"));

  // Biases an HF class cannot hold (or lacks) would be dropped or left random: rejected.
  expect_error([&] { config_for("llama", {"attn_q", "attn_k", "attn_v"}); },
               "layer 0 has biases on attn_k attn_q attn_v where LlamaForCausalLM holds them on "
               "attn_k attn_output attn_q attn_v",
               "test.gguf");
  expect_error([&] { config_for("qwen2", {}); }, "layer 0 has biases on none where Qwen2ForCausalLM", "test.gguf");
  expect_error([&] { config_for("qwen2", {"attn_q", "attn_k", "attn_v", "attn_output"}); }, "layer 0 has biases",
               "test.gguf");
  expect_error([&] { config_for("qwen3", {"ffn_up"}); }, "Qwen3ForCausalLM holds them on none", "test.gguf");
  // Only layer 1 biased.
  nlohmann::json config = hf_config_from_gguf(small_metadata("llama"), 100, true, DType::BF16);
  std::vector<std::string> names = names_with_biases({});
  for (const char* kind : {"attn_q", "attn_k", "attn_v", "attn_output"}) names.push_back(concat("blk.1.", kind, ".bias"));
  expect_error([&] { set_bias_flags(config, names, "test.gguf"); }, "layer 0 has biases on none", "test.gguf");
  names = names_with_biases({});
  names.push_back("blk.2.attn_q.bias");
  expect_error([&] { set_bias_flags(config, names, "test.gguf"); }, "tensor blk.2.attn_q.bias is past the last layer",
               "test.gguf");
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
