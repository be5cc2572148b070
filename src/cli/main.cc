// hlwq: the command line. Parses flags, runs one subcommand, prints errors as
// "hlwq: error: <what>, <where>" with exit status 1 (2 for usage errors).
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "core/interrupt.h"

int main(int argc, char** argv) {
  CLI::App app{"hlwq: calibration-free LLM weight quantization (Hadamard-Lloyd)", "hlwq"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hlwq 0.1.0");
  hlwq::cli::add_import_command(app);
  hlwq::cli::add_quantize_command(app);
  hlwq::cli::add_export_command(app);
  hlwq::cli::add_inspect_command(app);
  hlwq::cli::add_run_command(app);
  hlwq::cli::add_tokenize_command(app);
  hlwq::cli::add_ppl_command(app);
  hlwq::cli::add_chat_command(app);
  hlwq::cli::add_bench_command(app);
  hlwq::cli::add_serve_command(app);
  hlwq::install_interrupt_handler();
  // An unknown first word is a usage error that names it and lists the commands (CLI11 would
  // only say that an argument was not expected).
  if (argc > 1 && argv[1][0] != '-') {
    const std::string word = argv[1];
    std::string names;
    bool known = false;
    for (const CLI::App* command : app.get_subcommands({})) {
      known = known || command->get_name() == word;
      names += (names.empty() ? "" : ", ") + command->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "hlwq: error: unknown command '%s', the commands are %s (see hlwq --help)\n",
                   word.c_str(), names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForVersion& version) {
    return app.exit(version);
  } catch (const CLI::ParseError& error) {
    std::fprintf(stderr, "hlwq: error: %s (see hlwq --help)\n", error.what());
    return 2;
  } catch (const hlwq::Error& error) {
    std::fprintf(stderr, "hlwq: error: %s\n", error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "hlwq: error: out of memory\n");
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "hlwq: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
