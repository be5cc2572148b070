// `hlwq tokenize (-m DIR | --tokenizer FILE) (-p TEXT | -f FILE) [--json] [--add-bos]`: prints the
// ids of a text, with each token's bytes in the plain output.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace hlwq::cli {
namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  check(stream.good(), "cannot read the text file, ", path);
  std::ostringstream contents;
  contents << stream.rdbuf();
  check(!stream.bad(), "cannot read the text file, ", path);
  return contents.str();
}

// A token's bytes as one printable field: control characters, backslash and bytes that are not
// valid UTF-8 escaped.
std::string printable_piece(const std::string& piece) {
  std::string out;
  for (const char c : piece) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (byte < 0x20 || byte == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02X", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  struct Flags {
    std::string model, tokenizer, prompt, file;
    bool json = false, add_bos = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand("tokenize", "print the token ids of a text");
  CLI::Option* model = command->add_option("-m,--model", flags->model, "model folder (tokenizer.json)");
  CLI::Option* tokenizer =
      command->add_option("--tokenizer", flags->tokenizer, "tokenizer.json or .gguf file");
  model->excludes(tokenizer);
  CLI::Option* prompt = command->add_option("-p,--prompt", flags->prompt, "text to tokenize");
  CLI::Option* file = command->add_option("-f,--file", flags->file, "file whose text to tokenize");
  prompt->excludes(file);
  command->add_flag("--json", flags->json, "print {\"ids\": [...]}");
  command->add_flag("--add-bos", flags->add_bos, "put the BOS token first");
  command->callback([flags, model, tokenizer, prompt, file] {
    check(model->count() + tokenizer->count() == 1, "give the tokenizer with -m DIR or --tokenizer FILE");
    check(prompt->count() + file->count() == 1, "give the text with -p TEXT or -f FILE");
    if (model->count()) check_model_folder(flags->model);
    const Tokenizer loaded = model->count() ? Tokenizer::from_folder(flags->model) : Tokenizer::from_file(flags->tokenizer);
    const std::string text = prompt->count() ? flags->prompt : read_text_file(flags->file);
    const std::vector<int32_t> ids = loaded.encode(text, flags->add_bos);
    if (flags->json) {
      std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
      return;
    }
    for (const int32_t id : ids) std::printf("%d\t%s\n", id, printable_piece(loaded.token_piece(id)).c_str());
  });
}

}  // namespace hlwq::cli
