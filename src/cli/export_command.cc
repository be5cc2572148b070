// `hlwq export -m DIR -o OUT --to bf16|mlx|ct-int4|prism-hadamard [--bits 4] [--group-size G] [--dtype D]
// [--block B]`
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/export_model.h"
#include "core/progress.h"

namespace hlwq::cli {

void add_export_command(CLI::App& app) {
  struct Flags {
    std::string model, output, target, dtype;
    int bits = 4, threads = 0;
    std::optional<int> group_size, block;
    bool progress = false, json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("export", "any model folder -> BF16, MLX affine, CompressedTensors INT4 or (Qwen3.5) mlx-lm's prism Hadamard 2-bit pack");
  command->add_option("-m,--model", flags->model, "input model folder (dense or HLWQ)")->required();
  command->add_option("-o,--output", flags->output, "output folder (must not exist)")->required();
  command->add_option("--to", flags->target, "bf16 (dequantized), mlx (affine), ct-int4 (vLLM), prism-hadamard (mlx-lm, Qwen3.5)")
      ->required()->check(CLI::IsMember({"bf16", "mlx", "ct-int4", "prism-hadamard"}));
  command->add_option("--bits", flags->bits, "mlx: bits 2, 3, 4, 5, 6 or 8")->capture_default_str();
  command->add_option("--group-size", flags->group_size, "mlx: 32, 64 (default) or 128; ct-int4: 128 (default), 64, 32");
  command->add_option("--block", flags->block,
                      "prism-hadamard: rotation block 512..8192 for every module (default: per module, the largest "
                      "dividing its input width)");
  command->add_option("--dtype", flags->dtype, "float dtype written: bf16 (default), f16, f32, or original (bf16 target)")
      ->check(CLI::IsMember({"bf16", "f16", "f32", "original"}));
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_flag("--progress", flags->progress, "show progress even when stderr is not a terminal");
  command->add_flag("--json", flags->json, "print a JSON summary");
  command->callback([flags, command] {
    check_model_folder(flags->model);
    ExportOptions options;
    options.target = flags->target == "bf16"             ? ExportTarget::bf16
                     : flags->target == "mlx"            ? ExportTarget::mlx
                     : flags->target == "prism-hadamard" ? ExportTarget::prism_hadamard
                                                         : ExportTarget::ct_int4;
    if (flags->block && options.target != ExportTarget::prism_hadamard) fail("--block is only for --to prism-hadamard");
    if (options.target == ExportTarget::prism_hadamard && (command->count("--bits") || flags->group_size))
      fail("prism-hadamard is 2-bit with groups of 128: --bits and --group-size do not apply");
    if (options.target == ExportTarget::prism_hadamard && !flags->dtype.empty())
      fail("--dtype does not apply to prism-hadamard (float16 scales; other tensors keep their dtype)");
    options.block = flags->block;
    options.bits = flags->bits;
    options.group_size = flags->group_size;
    if (flags->dtype == "original") {
      if (options.target != ExportTarget::bf16) fail("--dtype original is only for --to bf16");
      options.keep_original_dtype = true;
    } else if (!flags->dtype.empty()) {
      options.dtype = parse_float_dtype(flags->dtype);
    }
    options.threads = flags->threads;
    options.progress = flags->progress || Progress::stderr_is_terminal();
    const ExportSummary summary = export_model(flags->model, flags->output, options);
    if (flags->json) {
      print_json(summary.to_json());
      return;
    }
    std::printf("exported %zu tensors (%zu quantized) to %s: %.1f MB in %.2f s\n", summary.tensors,
                summary.quantized_tensors, flags->output.c_str(), summary.bytes_out / 1e6, summary.seconds);
    if (!summary.left_unquantized.empty()) {
      std::fprintf(stderr, "hlwq: note: %zu weights left unquantized (input size not a multiple of the group size), e.g. %s\n",
                   summary.left_unquantized.size(), summary.left_unquantized.front().c_str());
    }
    if (!summary.unrotated.empty()) {
      std::fprintf(stderr, "hlwq: note: %zu weights packed without rotation (no block of 512..8192 divides the input width), e.g. %s\n",
                   summary.unrotated.size(), summary.unrotated.front().c_str());
    }
  });
}

}  // namespace hlwq::cli
