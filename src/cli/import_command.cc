// `hlwq import SRC.gguf -o DIR [--dtype bf16|f32|f16]`
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/gguf_import.h"
#include "core/progress.h"

namespace hlwq::cli {

void add_import_command(CLI::App& app) {
  struct Flags {
    std::string source, output, dtype = "bf16";
    bool progress = false, json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("import", "GGUF -> Hugging Face folder (config.json, safetensors, tokenizer.json)");
  command->add_option("source", flags->source, "GGUF file")->required();
  command->add_option("-o,--output", flags->output, "output folder (must not exist)")->required();
  command->add_option("--dtype", flags->dtype, "dtype of the written weights: bf16, f16 or f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  command->add_flag("--progress", flags->progress, "show progress even when stderr is not a terminal");
  command->add_flag("--json", flags->json, "print a JSON summary");
  command->callback([flags] {
    ImportOptions options;
    options.dtype = parse_float_dtype(flags->dtype);
    options.progress = flags->progress || Progress::stderr_is_terminal();
    const ImportSummary summary = import_gguf(flags->source, flags->output, options);
    if (flags->json) {
      print_json({{"architecture", summary.architecture},
                  {"tensors", summary.tensors},
                  {"bytes_out", summary.bytes_out},
                  {"seconds", summary.seconds}});
    } else {
      std::printf("imported %s (%zu tensors, %.1f MB) into %s in %.1f s\n", summary.architecture.c_str(),
                  summary.tensors, summary.bytes_out / 1e6, flags->output.c_str(), summary.seconds);
    }
  });
}

}  // namespace hlwq::cli
