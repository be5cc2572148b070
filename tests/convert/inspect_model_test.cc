#include "convert/inspect_model.h"

#include <gtest/gtest.h>

#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "core/error.h"
#include "quant/lloyd_max.h"

namespace hlwq {
namespace {

TEST(InspectModel, SqnrOfHlwqMatchesCodebookTheory) {
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.dtype = DType::F32;
  tiny.hidden = 256;
  write_tiny_model(folder.path() / "dense", tiny);
  for (int bits : {3, 5}) {
    QuantizeOptions options;
    options.params.bits = bits;
    const auto out = folder.path() / ("q" + std::to_string(bits));
    quantize_model(folder.path() / "dense", out, options);
    const ModelReport report = inspect_model(out, folder.path() / "dense", 2);
    ASSERT_TRUE(report.sqnr_db.has_value());
    // Gaussian weights: relative MSE is the codebook's MSE (fp16 norms add almost nothing).
    const double theory_db = -10 * std::log10(lloyd_max_codebook(bits).mse);
    EXPECT_NEAR(*report.sqnr_db, theory_db, 0.3) << bits;
    EXPECT_NEAR(report.bits_per_weight, bits + 16.0 / 128, 1e-9);
    const nlohmann::json json = report.to_json();
    EXPECT_TRUE(json.contains("bits_per_weight"));
    EXPECT_TRUE(json.contains("sqnr_db"));
    for (const auto& tensor : json["tensors"]) {
      for (const char* key : {"name", "shape", "format", "bits_per_weight", "rel_mse", "sqnr_db"})
        EXPECT_TRUE(tensor.contains(key)) << key;
    }
    // Dense tensors are identical to the reference.
    for (const TensorReport& tensor : report.tensors) {
      if (!tensor.quantized) {
        EXPECT_EQ(tensor.relative_mse.value_or(-1), 0.0) << tensor.name;
      }
    }
  }
}

// inspect dequantizes through the folder's own codec, so its SQNR covers the ablation variants.
TEST(InspectModel, SqnrOfEveryAblationVariant) {
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.dtype = DType::F32;
  tiny.hidden = 256;
  write_tiny_model(folder.path() / "dense", tiny);
  const double lloyd_max_db = -10 * std::log10(lloyd_max_codebook(5).mse);  // 26.0
  for (Rotation rotation : {Rotation::none, Rotation::hadamard}) {
    for (CodebookKind codebook : {CodebookKind::uniform, CodebookKind::converged}) {
      QuantizeOptions options;
      options.params.rotation = rotation;
      options.params.codebook = codebook;
      const auto out = folder.path() / ("q5-" + std::to_string(static_cast<int>(rotation)) + "-" +
                                        std::to_string(static_cast<int>(codebook)));
      quantize_model(folder.path() / "dense", out, options);
      const ModelReport report = inspect_model(out, folder.path() / "dense", 2);
      ASSERT_TRUE(report.sqnr_db.has_value());
      EXPECT_NEAR(report.bits_per_weight, 5 + 16.0 / 128, 1e-9);
      const std::string what = std::string(rotation == Rotation::none ? "none " : "hadamard ") +
                               codebook_kind_name(codebook);
      if (codebook == CodebookKind::converged) {
        // Gaussian weights are Gaussian with or without the rotation.
        EXPECT_NEAR(*report.sqnr_db, lloyd_max_db, 0.3) << what;
      } else {
        // Absmax Q5 of Gaussian blocks of 128: step max|z| / 15 with E max|z| ~ 2.9, ~25 dB.
        EXPECT_GT(*report.sqnr_db, 24.0) << what;
        EXPECT_LT(*report.sqnr_db, lloyd_max_db) << what;
      }
    }
  }
}

TEST(InspectModel, MismatchedReferenceIsAnError) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "a");
  TinyModelOptions other;
  other.hidden = 96;
  write_tiny_model(folder.path() / "b", other);
  EXPECT_THROW(inspect_model(folder.path() / "a", folder.path() / "b", 1), Error);
}

}  // namespace
}  // namespace hlwq
