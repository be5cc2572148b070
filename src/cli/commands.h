// Each subcommand lives in its own file and registers itself on the CLI11 app here.
// A command's callback throws hlwq::Error on bad input; main() prints it as one line.
#pragma once

#include <CLI/CLI.hpp>

namespace hlwq::cli {

void add_import_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_ppl_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace hlwq::cli
