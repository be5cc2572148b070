// A CI-sized run of scripts/quality (the quality study driver): the demo model, 4 windows of the
// llama.cpp protocol, HLWQ Q8/Q5/Q4/Q3 against the reference. Asserts what must hold whatever the
// text: each bit less moves the model further from the reference (mean KL-divergence up, top-1
// agreement down), and a rerun reuses every cached result. About a minute on 2 cores; skipped
// without the demo model or python3.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream stream(path);
  return {std::istreambuf_iterator<char>(stream), {}};
}

// WikiText-2's test split where the shared data is, else this repository's docs (long enough for
// 4 windows of 512 tokens, and a text every checkout has).
fs::path study_text(const fs::path& folder) {
  const fs::path wikitext = fs::path(HLWQ_SOURCE_DIR) / ".." / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw";
  if (fs::exists(wikitext)) return wikitext;
  const fs::path text = folder / "docs.txt";
  std::ofstream out(text);
  out << read_file(fs::path(HLWQ_SOURCE_DIR) / "README.md");
  for (const auto& entry : fs::directory_iterator(fs::path(HLWQ_SOURCE_DIR) / "docs")) {
    if (entry.is_regular_file()) out << read_file(entry.path());
  }
  return text;
}

// Runs the study into FOLDER/study; returns the exit status, the log in LOG.
int run_study(const fs::path& folder, const fs::path& text, std::string& log, const std::string& extra_arguments = "") {
  const fs::path log_path = folder / "quality.log";
  const std::string command = "python3 '" + std::string(HLWQ_SOURCE_DIR) + "/scripts/quality' --out '" +
                              (folder / "study").string() + "' --text '" + text.string() +
                              "' --max-windows 4 --protocols llama --rows reference,hlwq-q8,hlwq-q5,hlwq-q4,hlwq-q3"
                              " --skip-llama-cpp --skip-bench --hlwq '" + HLWQ_BINARY + "' --gguf '" +
                              demo_gguf_path().string() + "' " + extra_arguments + " > '" + log_path.string() + "' 2>&1";
  const int status = std::system(command.c_str());
  log = read_file(log_path);
  return status;
}

TEST(QualityStudy, FewerBitsMoveFurtherFromTheReferenceAndResultsAreReused) {
  if (demo_gguf_path().empty()) GTEST_SKIP() << "demo model absent (scripts/fetch_demo_model.sh)";
  if (std::system("python3 --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not available";
  TemporaryFolder folder;
  const fs::path text = study_text(folder.path());
  std::string log;
  ASSERT_EQ(run_study(folder.path(), text, log), 0) << log;

  const fs::path study = folder.path() / "study";
  const nlohmann::json data = nlohmann::json::parse(read_file(study / "quality.json"));
  std::map<std::string, nlohmann::json> rows;
  for (const auto& row : data["rows"]) rows[row["name"].get<std::string>()] = row;
  ASSERT_EQ(rows.size(), 5u) << data.dump(1);

  const nlohmann::json& reference = rows["reference"]["protocols"]["llama"];
  // 4 windows of 512, predictions at positions 256..510 scored: 255 per window.
  EXPECT_EQ(reference["tokens_scored"].get<int64_t>(), 4 * 255);
  EXPECT_GT(reference["perplexity"].get<double>(), 1.0);
  EXPECT_FALSE(reference.contains("kl_divergence"));

  const std::vector<std::string> by_bits = {"hlwq-q8", "hlwq-q5", "hlwq-q4", "hlwq-q3"};
  double previous_divergence = 0, previous_agreement = 1.0;
  double previous_bits = 1e9;
  for (const std::string& name : by_bits) {
    const nlohmann::json& row = rows[name];
    const nlohmann::json& result = row["protocols"]["llama"];
    ASSERT_TRUE(result.contains("kl_divergence")) << name << ": " << row.dump(1);
    const double divergence = result["kl_divergence"]["mean"].get<double>();
    const double agreement = result["kl_divergence"]["top1_agreement"].get<double>();
    EXPECT_EQ(result["tokens_scored"], reference["tokens_scored"]) << name;
    EXPECT_GT(divergence, previous_divergence) << name << " is not further from the reference than the row before";
    EXPECT_LT(agreement, previous_agreement) << name << " agrees with the reference as often as the row before";
    // Every tensor counted; the reference is F32 (32 bits), HLWQ keeps its F32 embedding.
    const double bits = row["bits_per_weight"].get<double>();
    EXPECT_LT(bits, previous_bits) << name;
    EXPECT_LT(bits, 32.0) << name;
    EXPECT_GT(row["weight_error"]["linear_sqnr_db"].get<double>(), 10.0) << name;
    previous_divergence = divergence;
    previous_agreement = agreement;
    previous_bits = bits;
  }
  EXPECT_LT(rows["hlwq-q8"]["protocols"]["llama"]["kl_divergence"]["mean"].get<double>(), 0.01);
  EXPECT_NEAR(rows["reference"]["bits_per_weight"].get<double>(), 32.0, 1e-9);

  const std::string table = read_file(study / "quality.md");
  for (const char* expected : {"| HLWQ Q8 (native codes) |", "| HLWQ Q3 (native codes) |", "1,020 tokens scored"})
    EXPECT_NE(table.find(expected), std::string::npos) << expected << " missing from\n" << table;
  if (python_has("matplotlib")) {
    EXPECT_TRUE(fs::exists(study / "kld_vs_bpw.llama.png"));
    EXPECT_TRUE(fs::exists(study / "ppl_vs_bpw.llama.png"));
  }

  // A rerun measures nothing again: the cached result files are left as they were.
  const fs::path cached = study / "results" / "hlwq-q4.llama.json";
  const auto written = fs::last_write_time(cached);
  ASSERT_EQ(run_study(folder.path(), text, log), 0) << log;
  EXPECT_EQ(fs::last_write_time(cached), written);
  EXPECT_EQ(log.find("PPL "), std::string::npos) << "the rerun measured again:\n" << log;
  EXPECT_EQ(nlohmann::json::parse(read_file(study / "quality.json"))["rows"].size(), 5u);

  // --report-only measures nothing even where results are missing: results of the CPU runtime do
  // not stand for --backend cuda, so every row is reported unmeasured, with the note given and a
  // warning that names the setting that differs.
  ASSERT_EQ(run_study(folder.path(), text, log, "--backend cuda --report-only --note 'measured elsewhere'"), 0) << log;
  EXPECT_EQ(fs::last_write_time(cached), written);
  EXPECT_EQ(log.find("PPL "), std::string::npos) << "--report-only measured:\n" << log;
  const nlohmann::json report = nlohmann::json::parse(read_file(study / "quality.json"));
  for (const nlohmann::json& row : report["rows"]) EXPECT_TRUE(row["protocols"].empty()) << row.dump(1);
  EXPECT_NE(read_file(study / "quality.md").find("measured elsewhere"), std::string::npos);
  EXPECT_NE(log.find("warning: hlwq-q4 llama: the saved result was measured otherwise and is left out "
                     "(engine 'hlwq' there, 'hlwq --backend cuda' here)"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace hlwq
