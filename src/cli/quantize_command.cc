// `hlwq quantize -m DIR -o OUT [--bits 5 | --target-bpw X] [--block 128|auto] [--signs SEED] [--gain norm|lsq]
//  [--rotation hadamard|none] [--codebook lloyd-max|uniform|trellis [--trellis-state-bits 12] | --compat polarquant]
//  [--include RE] [--exclude RE] [--quantize-embeddings] [--threads N] [--json]`
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/quantize_model.h"
#include "core/error.h"
#include "core/progress.h"

namespace hlwq::cli {

namespace {

int parse_block_size(const std::string& text) {
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used != 0 && used == text.size(), "--block must be a number or auto, got '", text, "'");
  return value;
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  struct Flags {
    std::string model, output, block = "auto", gain = "lsq", rotation = "hadamard", codebook = "lloyd-max";
    std::string compat, include, exclude;
    int bits = 5, threads = 0, trellis_state_bits = 12;
    double target_bpw = 0;
    std::optional<uint64_t> signs;
    bool keep_embeddings = false, quantize_embeddings = false, progress = false, json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("quantize", "dense model folder -> HLWQ model folder");
  command->add_option("-m,--model", flags->model, "input model folder (dense safetensors)")->required();
  command->add_option("-o,--output", flags->output, "output folder (must not exist)")->required();
  auto* bits = command->add_option("--bits", flags->bits, "bits per code, 2..8")->capture_default_str();
  command
      ->add_option("--target-bpw", flags->target_bpw,
                   "average bits per weight of the quantized tensors (codes and gains): each tensor gets the code "
                   "width 2..8 that spends this budget where it removes the most weight error, measured on a "
                   "sample of its rows (no calibration data)")
      ->check(CLI::Range(1.0, 16.0))
      ->excludes(bits);
  // The defaults, --block auto --gain lsq, come from the quality study (whole WikiText-2 test,
  // SmolLM2-135M, docs/quality/quality.md): against the paper's block 128 with norm gains, mean KLD
  // over three sign seeds fell 4% at Q5 and 1% at Q4 with 6% fewer bits (auto), and the
  // least-squares gain took 3% more off at Q4 in every block setting (equal at Q5). On rows that
  // 128 divides, auto is block 128.
  auto* block = command->add_option("--block", flags->block,
                                    "block size: auto (128, except rows whose width 128 does not divide, which take "
                                    "the largest power of two from 32 that does: nothing padded), or a power of two "
                                    "from 32 to 1024")
                    ->capture_default_str();
  command->add_option("--signs", flags->signs, "seed: random +-1 per input column before the Hadamard transform");
  auto* gain = command->add_option("--gain", flags->gain,
                                   "block gain: lsq (least squares: the smallest error for the chosen codes) or "
                                   "norm (the block's norm, the paper's)")
                   ->check(CLI::IsMember({"norm", "lsq"}))
                   ->capture_default_str();
  command->add_option("--rotation", flags->rotation,
                      "hadamard (HLWQ) or none (ablation: code the weights in their own basis)")
      ->check(CLI::IsMember({"hadamard", "none"}))->capture_default_str();
  auto* codebook = command->add_option("--codebook", flags->codebook,
                                       "lloyd-max (HLWQ), uniform (ablation: absmax levels scaled per block) or "
                                       "trellis (each row's rotated blocks coded as one trellis walk of --bits bits a "
                                       "value: 2.4-3.1 dB less weight error than lloyd-max at the same bits, plus "
                                       "L - k bits a row; encoding is O(2^L) a weight)")
      ->check(CLI::IsMember({"lloyd-max", "uniform", "trellis"}))->capture_default_str();
  // L = 12 by default: on the demo model (SmolLM2-135M, k = 4; docs/QUALITY.md) L = 14 took 8% off
  // the KLD for about 6x the encoding time and 10-25% slower decode (a 64 KB codebook instead of
  // 16 KB).
  auto* state_bits = command->add_option("--trellis-state-bits", flags->trellis_state_bits,
                                         "with --codebook trellis: L, the trellis' state bits (k < L <= 20). 12 "
                                         "encodes about 6x faster than 14 and decodes 10-25% faster (16 KB "
                                         "codebook); 14 gave 8% less KLD on the demo model")
                         ->capture_default_str();
  auto* compat = command->add_option("--compat", flags->compat,
                                     "polarquant: the reference implementation's 100-iteration codebook, block 128 "
                                     "and norm gains unless --block / --gain say otherwise")
                     ->check(CLI::IsMember({"polarquant"}))
                     ->excludes(codebook);
  command->add_option("--include", flags->include, "only quantize tensors whose name matches this regex");
  command->add_option("--exclude", flags->exclude, "never quantize tensors whose name matches this regex");
  auto* keep = command->add_flag("--keep-embeddings", flags->keep_embeddings, "keep token embeddings in 16 bit (default)");
  command->add_flag("--quantize-embeddings", flags->quantize_embeddings, "quantize token embeddings too")->excludes(keep);
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_flag("--progress", flags->progress, "show progress even when stderr is not a terminal");
  command->add_flag("--json", flags->json, "print a JSON summary");
  command->callback([flags, block, gain, compat, state_bits] {
    check_model_folder(flags->model);
    const bool trellis = flags->codebook == "trellis";
    check(trellis || state_bits->count() == 0, "--trellis-state-bits needs --codebook trellis");
    check(!trellis || flags->target_bpw <= 0, "--target-bpw does not apply to --codebook trellis (one width for every "
          "tensor: use --bits)");
    check(!trellis || flags->rotation == "hadamard", "--codebook trellis needs --rotation hadamard");
    // PolarQuant pads every row to blocks of 128 and scales each block by its norm.
    if (compat->count() > 0 && block->count() == 0) flags->block = "128";
    if (compat->count() > 0 && gain->count() == 0) flags->gain = "norm";
    QuantizeOptions options;
    options.params.bits = flags->bits;
    options.target_bits_per_weight = flags->target_bpw;
    options.fit_block_to_rows = flags->block == "auto";
    options.params.block = options.fit_block_to_rows ? 128 : parse_block_size(flags->block);
    options.params.sign_seed = flags->signs;
    options.params.gain = flags->gain == "lsq" ? BlockGain::least_squares : BlockGain::norm;
    options.params.rotation = flags->rotation == "none" ? Rotation::none : Rotation::hadamard;
    options.params.codebook = !flags->compat.empty()          ? CodebookKind::polarquant_compat
                              : flags->codebook == "uniform" ? CodebookKind::uniform
                                                             : CodebookKind::converged;
    if (trellis) options.trellis_state_bits = flags->trellis_state_bits;
    if (!flags->include.empty()) options.selection.include = flags->include;
    if (!flags->exclude.empty()) options.selection.exclude = flags->exclude;
    options.selection.quantize_embeddings = flags->quantize_embeddings;
    options.threads = flags->threads;
    options.progress = flags->progress || Progress::stderr_is_terminal();
    const QuantizeSummary summary = quantize_model(flags->model, flags->output, options);
    if (flags->json) {
      print_json(summary.to_json());
    } else {
      const nlohmann::json numbers = summary.to_json();
      std::string widths;  // "Q5" or, from --target-bpw, "Q4 x 90, Q5 x 120"; trellis: "k4 L12"
      for (const auto& [width, count] : summary.tensors_per_width) {
        widths += (widths.empty() ? "" : ", ") +
                  (trellis ? concat("k", width, " L", flags->trellis_state_bits) : "Q" + std::to_string(width)) +
                  (flags->target_bpw > 0 ? " x " + std::to_string(count) : "");
      }
      std::printf("quantized %zu of %zu tensors to %s %s: %.4f bits per weight (quantized tensors), "
                  "%.4f overall; %.1f MB -> %.1f MB in %.2f s (%.2f GB/s), peak memory %.0f MB\n",
                  summary.quantized_tensors, summary.tensors, trellis ? "trellis" : "HLWQ",
                  widths.empty() ? "(none)" : widths.c_str(),
                  numbers["quantized_bits_per_weight"].get<double>(), numbers["bits_per_weight"].get<double>(),
                  summary.bytes_in / 1e6, summary.bytes_out / 1e6, summary.seconds,
                  numbers["input_gb_per_second"].get<double>(), summary.peak_rss_bytes / 1e6);
    }
  });
}

}  // namespace hlwq::cli
