// `hlwq ppl -m DIR -f FILE [--ctx 512] [--stride N] [--save-logits F] [--kld-base F] [--backend cuda] [--json]`
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/progress.h"
#include "eval/model_perplexity.h"

namespace hlwq::cli {

void add_ppl_command(CLI::App& app) {
  struct Flags {
    std::string model, file, save_logits, kld_base, backend = "cpu";
    int64_t context = 512, stride = 0, max_windows = 0;
    int threads = 0;
    bool json = false, progress = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("ppl", "perplexity (and KL-divergence against a saved reference) on a text file");
  command->add_option("-m,--model", flags->model, "model folder (any format hlwq runs)")->required();
  command->add_option("-f,--file", flags->file, "text file (e.g. WikiText-2's wiki.test.raw)")->required();
  command->add_option("--ctx", flags->context, "context window in tokens")->capture_default_str();
  command->add_option("--stride", flags->stride,
                      "sliding windows with this stride (Hugging Face protocol); 0: llama.cpp protocol")
      ->capture_default_str();
  command->add_option("--max-windows", flags->max_windows, "stop after this many windows (0: whole file)");
  command->add_option("--save-logits", flags->save_logits, "save this model's distributions (the KLD reference)");
  command->add_option("--kld-base", flags->kld_base, "compare with distributions saved by --save-logits");
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_option("--backend", flags->backend,
                      "where the model runs, on its stored formats: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  command->add_flag("--progress", flags->progress, "show progress even when stderr is not a terminal");
  command->add_flag("--json", flags->json, "print JSON");
  command->callback([flags] {
    check_model_folder(flags->model);
    ModelPerplexityOptions options;
    options.context = flags->context;
    options.stride = flags->stride;
    options.max_windows = flags->max_windows;
    options.threads = flags->threads;
    options.backend = parse_backend_kind(flags->backend);
    options.progress = flags->progress || Progress::stderr_is_terminal();
    if (!flags->save_logits.empty()) options.save_logits = flags->save_logits;
    if (!flags->kld_base.empty()) options.kld_base = flags->kld_base;
    const ModelPerplexityReport report = model_perplexity(flags->model, flags->file, options);
    if (flags->json) {
      print_json(report.to_json());
    } else {
      std::fputs(report.to_text().c_str(), stdout);
    }
  });
}

}  // namespace hlwq::cli
