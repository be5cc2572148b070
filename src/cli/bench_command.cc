// `hlwq bench (-m DIR | --synthetic NAME [--format F] [--quantize-embeddings] [--save DIR]) [-p 512]
// [-n 128] [--backend cpu|cuda] [--threads N] [--json]`
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/bench.h"

namespace hlwq::cli {

void add_bench_command(CLI::App& app) {
  struct Flags {
    std::string model, synthetic, format = "hlwq-q4", backend = "cpu", save;
    bool quantize_embeddings = false;
    BenchOptions options;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("bench", "prefill/decode speed and the fraction of the memory roofline");
  auto* model_option = command->add_option("-m,--model", flags->model, "model folder");
  command
      ->add_option("--synthetic", flags->synthetic,
                   "random weights of a real shape, made in memory: smollm2-135m, qwen3-0.6b, llama3-1b, llama3-8b, "
                   "qwen3-8b")
      ->excludes(model_option);
  command
      ->add_option("--format", flags->format,
                   "synthetic model format: bf16, hlwq-q2 to hlwq-q8, trellis-k2 to trellis-k8 (L = 12), mlx4, int4")
      ->capture_default_str();
  command->add_flag("--quantize-embeddings", flags->quantize_embeddings,
                    "synthetic model: the token embedding in --format too (else BF16)");
  command->add_option("--save", flags->save,
                      "write the synthetic model (bf16, and --format's through quantize or export) into this new "
                      "folder and stop, without benchmarking")
      ->needs(command->get_option("--synthetic"));
  command->add_option("-p", flags->options.prompt_tokens, "prompt tokens (prefill)")->capture_default_str();
  command->add_option("-n", flags->options.generated_tokens, "generated tokens (decode)")->capture_default_str();
  command->add_option("--repetitions", flags->options.repetitions, "best of this many runs")->capture_default_str();
  command->add_option("--threads", flags->options.threads, "worker threads (default: all cores)");
  command->add_option("--backend", flags->backend, "where the model runs: cpu or cuda")->capture_default_str();
  command->add_flag("--json", flags->json, "print JSON");
  command->callback([flags] {
    check(!flags->model.empty() || !flags->synthetic.empty(), "give -m DIR or --synthetic NAME");
    if (!flags->model.empty()) check_model_folder(flags->model);
    flags->options.backend = parse_backend_kind(flags->backend);
    if (!flags->save.empty()) {
      check(!std::filesystem::exists(flags->save), "output path exists (remove it or choose another), ", flags->save);
      std::filesystem::create_directories(flags->save);
      const auto folder = write_synthetic_model(flags->synthetic, flags->format, flags->save, flags->options.threads);
      std::printf("%s\n", folder.string().c_str());
      return;
    }
    BenchReport report;
    if (!flags->synthetic.empty()) {
      const ModelConfig config = synthetic_model_config(flags->synthetic);
      const RandomLinearFormat format = synthetic_format(flags->format);
      ThreadPool pool(flags->options.threads);
      const Model model = Model::synthetic(config, format, flags->quantize_embeddings, pool);
      report = bench_loaded_model(model,
                                  flags->synthetic + " (" + flags->format +
                                      (flags->quantize_embeddings ? ", embeddings too" : "") + ", synthetic)",
                                  flags->options);
    } else {
      report = bench_model(flags->model, flags->options);
    }
    if (flags->json) {
      print_json(report.to_json());
    } else {
      std::fputs(report.to_text().c_str(), stdout);
    }
  });
}

}  // namespace hlwq::cli
