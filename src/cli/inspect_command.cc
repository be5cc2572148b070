// `hlwq inspect -m DIR [--ref DIR] [--json]`
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "convert/inspect_model.h"

namespace hlwq::cli {

void add_inspect_command(CLI::App& app) {
  struct Flags {
    std::string model, reference;
    int threads = 0;
    bool json = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("inspect", "tensors, formats, bits per weight; error vs a reference");
  command->add_option("-m,--model", flags->model, "model folder")->required();
  command->add_option("--ref", flags->reference, "reference model folder: report relative MSE and SQNR per tensor");
  command->add_option("--threads", flags->threads, "worker threads (default: all cores)");
  command->add_flag("--json", flags->json, "print JSON");
  command->callback([flags] {
    check_model_folder(flags->model);
    std::optional<std::filesystem::path> reference;
    if (!flags->reference.empty()) reference = flags->reference;
    const ModelReport report = inspect_model(flags->model, reference, flags->threads);
    if (flags->json) {
      print_json(report.to_json());
    } else {
      std::fputs(report.to_table().c_str(), stdout);
    }
  });
}

}  // namespace hlwq::cli
