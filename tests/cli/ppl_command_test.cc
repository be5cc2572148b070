// `hlwq ppl` end to end on the demo model: both protocols, --save-logits / --kld-base, and the
// ordering that must hold (a model against its own saved distributions has KLD ~ 0; HLWQ Q8 is
// closer to the reference than Q3).
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "convert/gguf_import.h"
#include "convert/quantize_model.h"
#include "core/file_writer.h"
#include "test_util.h"

namespace hlwq {
namespace {

nlohmann::json run_json(const std::string& arguments) {
  const CommandResult result = run_hlwq(arguments + " --json --threads 2 2>/dev/null");
  EXPECT_EQ(result.exit_code, 0) << arguments << "\n" << result.output;
  return nlohmann::json::parse(result.output, nullptr, false);
}

TEST(PplCommand, ProtocolsAndKlDivergenceOnTheDemoModel) {
  const auto gguf = demo_gguf_path();
  if (gguf.empty()) GTEST_SKIP() << "demo model not fetched (scripts/fetch_demo_model.sh)";
  TemporaryFolder folder;
  const auto reference = folder.path() / "reference";
  ImportOptions import;
  import.dtype = DType::F32;
  import_gguf(gguf, reference, import);
  for (int bits : {3, 8}) {
    QuantizeOptions options;
    options.params.bits = bits;
    quantize_model(reference, folder.path() / ("q" + std::to_string(bits)), options);
  }
  std::string text;
  for (int i = 0; i < 12; ++i) {
    text += "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
            "structure in Paris. Its base is square, measuring 125 metres on each side. During its "
            "construction, the Eiffel Tower surpassed the Washington Monument to become the tallest "
            "man-made structure in the world. ";
  }
  const auto text_file = folder.path() / "text.txt";
  write_text_file(text_file, text);
  const std::string common = " -f " + text_file.string() + " --ctx 128";

  const auto base_logits = folder.path() / "base.logits";
  const nlohmann::json base =
      run_json("ppl -m " + reference.string() + common + " --save-logits " + base_logits.string());
  EXPECT_GT(base["tokens_scored"].get<int64_t>(), 100);
  EXPECT_EQ(base["tokens_scored"].get<int64_t>(), base["windows"].get<int64_t>() * (128 - 1 - 64));
  EXPECT_GT(base["perplexity"].get<double>(), 1.0);
  EXPECT_LT(base["perplexity"].get<double>(), 50.0);  // repeated English text is easy
  EXPECT_GT(base["perplexity_stderr"].get<double>(), 0.0);

  // The reference against its own saved distributions: only the 16-bit storage differs.
  const nlohmann::json self = run_json("ppl -m " + reference.string() + common + " --kld-base " + base_logits.string());
  EXPECT_LT(self["kl_divergence"]["mean"].get<double>(), 1e-5);
  EXPECT_EQ(self["kl_divergence"]["top1_agreement"].get<double>(), 1.0);

  const nlohmann::json q8 = run_json("ppl -m " + (folder.path() / "q8").string() + common + " --kld-base " + base_logits.string());
  const nlohmann::json q3 = run_json("ppl -m " + (folder.path() / "q3").string() + common + " --kld-base " + base_logits.string());
  EXPECT_LT(q8["kl_divergence"]["mean"].get<double>(), q3["kl_divergence"]["mean"].get<double>());
  EXPECT_GT(q8["kl_divergence"]["top1_agreement"].get<double>(), 0.95);
  EXPECT_LT(std::fabs(q8["perplexity"].get<double>() - base["perplexity"].get<double>()),
            std::fabs(q3["perplexity"].get<double>() - base["perplexity"].get<double>()) + 1e-9);

  // Sliding windows score every token after the first exactly once.
  const nlohmann::json sliding = run_json("ppl -m " + reference.string() + common + " --stride 64");
  const nlohmann::json ids = nlohmann::json::parse(
      run_hlwq("tokenize -m " + reference.string() + " -f " + text_file.string() + " --json").output, nullptr, false);
  EXPECT_EQ(sliding["tokens_scored"].get<int64_t>(), static_cast<int64_t>(ids["ids"].size()) - 1);

  // A mismatched base is an error, not a number.
  const CommandResult mismatch = run_hlwq("ppl -m " + reference.string() + common +
                                          " --stride 64 --kld-base " + base_logits.string());
  EXPECT_EQ(mismatch.exit_code, 1) << mismatch.output;
  EXPECT_NE(mismatch.output.find("hlwq: error: "), std::string::npos) << mismatch.output;
}

}  // namespace
}  // namespace hlwq
