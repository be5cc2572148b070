// Hugging Face model folders: finding and cross-checking the weight files, and writing weights
// as one file or as shards with the index HF tools expect.
#include "io/model_folder.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <set>
#include <utility>

#include "core/error.h"
#include "core/file_writer.h"
#include "core/mapped_file.h"

namespace hlwq {

namespace fs = std::filesystem;

namespace {

constexpr char kSingleWeightsFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

constexpr std::array<const char*, 8> kAuxiliaryFiles = {
    "tokenizer.json",          "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json",  "chat_template.jinja",   "vocab.json",
    "merges.txt",              "tokenizer.model",
};

// A shard named in an index must be a plain file name inside the folder: an index is input
// data, and "../x" or "/etc/x" would read files elsewhere.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

// Shard files named by the index, in sorted order (model-00001-of-N first), after checking
// the index's structure.
std::vector<std::string> read_index(const fs::path& index_path, const nlohmann::json& index) {
  const std::string where = index_path.string();
  check(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
        "index has no \"weight_map\" object, ", where);
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    check(shard.is_string(), "weight_map entry of tensor ", quoted_name(tensor),
          " is not a file name, ", where);
    const std::string name = shard.get<std::string>();
    check(is_plain_file_name(name), "weight_map names shard ", quoted_name(name),
          " outside the model folder, ", where);
    shard_names.insert(name);
  }
  check(!shard_names.empty(), "index maps no tensors, ", where);
  return {shard_names.begin(), shard_names.end()};
}

// The weight files when there is neither an index nor model.safetensors.
std::vector<std::string> find_safetensors_files(const fs::path& folder) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator entry(folder, error), end; !error && entry != end;
       entry.increment(error)) {
    std::error_code ignored;
    if (entry->is_regular_file(ignored) && entry->path().extension() == ".safetensors")
      names.push_back(entry->path().filename().string());
  }
  check(!error, "cannot list the model folder: ", error.message(), ", ", folder.string());
  std::sort(names.begin(), names.end());
  return names;
}

// A weight file may be a symbolic link only to a file inside the folder, or, for a snapshot of
// the Hugging Face cache (.../snapshots/REVISION/), inside the cache's blobs/ folder where its
// links point; a link elsewhere would read files the folder does not hold.
void check_inside_folder(const fs::path& folder, const fs::path& file) {
  std::error_code error;
  const fs::path target = fs::canonical(file, error);
  check(!error, "cannot resolve weight file: ", error.message(), ", ", file.string());
  const fs::path root = fs::canonical(folder, error);
  check(!error, "cannot resolve the model folder: ", error.message(), ", ", folder.string());
  const auto is_under = [&target](const fs::path& base) {
    const auto [base_end, target_at] = std::mismatch(base.begin(), base.end(), target.begin(), target.end());
    return base_end == base.end() && target_at != target.end();
  };
  const bool cache_blob =
      root.parent_path().filename() == "snapshots" && is_under(root.parent_path().parent_path() / "blobs");
  check(is_under(root) || cache_blob, "weight file links to ", target.string(), " outside the model folder, ",
        file.string());
}

}  // namespace

nlohmann::json read_json_file(const fs::path& path) {
  const MappedFile file = MappedFile::open(path);
  const auto bytes = file.bytes();
  const char* text = reinterpret_cast<const char*>(bytes.data());
  // nlohmann takes a NUL byte for the end of input and would ignore what follows it.
  const std::string_view view(text, bytes.size());
  const size_t nul = view.find('\0');
  check(nul == std::string_view::npos, "invalid JSON: NUL byte at byte ", nul, ", ",
        path.string());
  try {
    return nlohmann::json::parse(text, text + bytes.size());
  } catch (const nlohmann::json::parse_error& error) {
    // what() is "[json.exception.parse_error.101] parse error at line L, column C: reason";
    // keep the position and reason, in one line.
    std::string message = error.what();
    const size_t start = message.find("parse error");
    if (start != std::string::npos) message.erase(0, start);
    if (message.size() > 300) message = message.substr(0, 300) + "...";
    for (char& character : message) {
      const auto byte = static_cast<unsigned char>(character);
      if (byte < 0x20 || byte >= 0x7f) character = '?';
    }
    fail("invalid JSON: ", message, ", ", path.string());
  }
}

ModelFolder ModelFolder::open(const fs::path& folder) {
  std::error_code error;
  check(fs::is_directory(folder, error), "the model folder does not exist, ", folder.string());
  ModelFolder model;
  model.path_ = folder;
  const fs::path config_path = folder / "config.json";
  check(fs::exists(config_path, error), "missing config.json, ", folder.string());
  model.config_ = read_json_file(config_path);
  check(model.config_.is_object(), "config is not a JSON object, ", config_path.string());

  const fs::path index_path = folder / kIndexFile;
  nlohmann::json index;
  std::vector<std::string> shard_names;
  if (fs::exists(index_path, error)) {
    index = read_json_file(index_path);
    shard_names = read_index(index_path, index);
  } else if (fs::exists(folder / kSingleWeightsFile, error)) {
    shard_names = {kSingleWeightsFile};
  } else {
    shard_names = find_safetensors_files(folder);
  }
  check(!shard_names.empty(), "no safetensors weights found, ", folder.string());

  for (const std::string& shard_name : shard_names) {
    const fs::path shard_path = folder / shard_name;
    check(fs::exists(shard_path, error), "missing weight shard ", quoted_name(shard_name),
          ", ", folder.string());
    check_inside_folder(folder, shard_path);
    model.shards_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(shard_path)));
    model.shard_paths_.push_back(shard_path);
    const size_t shard = model.shards_.size() - 1;
    for (const TensorInfo& tensor : model.shards_[shard]->tensors()) {
      const auto [where, inserted] = model.locations_.emplace(tensor.name, Location{shard, &tensor});
      check(inserted, "tensor ", quoted_name(tensor.name), " is in both ",
            shard_names[where->second.shard], " and ", shard_name, ", ", folder.string());
      model.names_.push_back(tensor.name);
    }
  }

  // Tensors a shard holds but the index omits are kept (loaders read whole shards); tensors
  // the index promises must be where it says.
  if (!index.is_null()) {
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      const auto found = model.locations_.find(tensor);
      const std::string& shard_name = shard.get_ref<const std::string&>();
      check(found != model.locations_.end() && shard_names[found->second.shard] == shard_name,
            "index maps tensor ", quoted_name(tensor), " to ", shard_name,
            " which does not hold it, ", index_path.string());
    }
  }
  return model;
}

bool ModelFolder::has(std::string_view name) const { return locations_.contains(name); }

const TensorInfo& ModelFolder::info(std::string_view name) const {
  const auto found = locations_.find(name);
  check(found != locations_.end(), "no tensor ", quoted_name(name), " in the model, ",
        path_.string());
  return *found->second.info;
}

const fs::path& ModelFolder::file(std::string_view name) const {
  const auto found = locations_.find(name);
  check(found != locations_.end(), "no tensor ", quoted_name(name), " in the model, ", path_.string());
  return shard_paths_[found->second.shard];
}

std::span<const std::byte> ModelFolder::data(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  return shards_[locations_.find(name)->second.shard]->data(tensor);
}

void ModelFolder::release(std::string_view name) const {
  const SafetensorsFile& shard = *shards_[locations_.find(name)->second.shard];
  shard.file().release(data(name));
}

uint64_t ModelFolder::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) {
    for (const TensorInfo& tensor : shard->tensors()) total += tensor.byte_size();
  }
  return total;
}

std::vector<fs::path> ModelFolder::auxiliary_files() const {
  std::vector<fs::path> files;
  std::error_code error;
  for (const char* name : kAuxiliaryFiles) {
    if (fs::is_regular_file(path_ / name, error)) files.push_back(path_ / name);
  }
  return files;
}

struct ShardedSafetensorsWriter::Impl {
  fs::path folder;
  std::vector<TensorDeclaration> tensors;
  std::map<std::string, std::string> metadata;
  std::vector<size_t> shard_of;        // tensor index -> shard index
  std::vector<size_t> shard_first;     // shard index -> its first tensor index
  std::vector<std::string> shard_names;
  uint64_t total_bytes = 0;
  size_t next = 0;  // index of the tensor write() expects next
  std::unique_ptr<SafetensorsWriter> writer;  // of the shard holding tensors[next]

  size_t shard_count() const { return shard_names.size(); }
  size_t shard_end(size_t shard) const {
    return shard + 1 < shard_count() ? shard_first[shard + 1] : tensors.size();
  }
};

namespace {

std::string shard_file_name(size_t shard, size_t shard_count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", shard + 1, shard_count);
  return name;
}

}  // namespace

ShardedSafetensorsWriter::ShardedSafetensorsWriter(const fs::path& folder,
                                                   std::vector<TensorDeclaration> tensors,
                                                   uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>()) {
  Impl& state = *impl_;
  state.folder = folder;
  state.tensors = std::move(tensors);
  state.metadata = std::move(metadata);
  std::set<std::string_view> names;
  std::vector<uint64_t> sizes;
  for (const TensorDeclaration& tensor : state.tensors) {
    check(names.insert(tensor.name).second, "tensor ", quoted_name(tensor.name),
          " declared twice, ", folder.string());
    sizes.push_back(tensor.byte_size());
    check(state.total_bytes + sizes.back() >= state.total_bytes,
          "tensors too large to write, ", folder.string());
    state.total_bytes += sizes.back();
  }

  // Greedy split in declaration order; a shard holds at least one tensor, so a tensor larger
  // than the limit gets a shard of its own.
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < state.tensors.size(); ++i) {
    const bool start_new = state.shard_first.empty() ||
                           (state.total_bytes > max_shard_bytes &&
                            shard_bytes + sizes[i] > max_shard_bytes &&
                            i > state.shard_first.back());
    if (start_new) {
      state.shard_first.push_back(i);
      shard_bytes = 0;
    }
    shard_bytes += sizes[i];
    state.shard_of.push_back(state.shard_first.size() - 1);
  }
  if (state.shard_first.empty()) state.shard_first.push_back(0);  // no tensors: one empty file
  const size_t count = state.shard_first.size();
  for (size_t shard = 0; shard < count; ++shard)
    state.shard_names.push_back(count == 1 ? kSingleWeightsFile : shard_file_name(shard, count));
  if (state.tensors.empty()) {
    state.writer = std::make_unique<SafetensorsWriter>(folder / kSingleWeightsFile,
                                                       std::vector<TensorDeclaration>{},
                                                       state.metadata);
  }
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() = default;

void ShardedSafetensorsWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  Impl& state = *impl_;
  check(state.next < state.tensors.size(), "tensor ", quoted_name(name),
        " written after all declared tensors, ", state.folder.string());
  check(name == state.tensors[state.next].name, "tensor ", quoted_name(name),
        " written out of order (expected ", quoted_name(state.tensors[state.next].name), "), ",
        state.folder.string());
  const size_t shard = state.shard_of[state.next];
  if (state.next == state.shard_first[shard]) {  // first tensor of a shard: start the file
    std::vector<TensorDeclaration> shard_tensors(
        state.tensors.begin() + static_cast<ptrdiff_t>(state.shard_first[shard]),
        state.tensors.begin() + static_cast<ptrdiff_t>(state.shard_end(shard)));
    state.writer = std::make_unique<SafetensorsWriter>(
        state.folder / state.shard_names[shard], std::move(shard_tensors), state.metadata);
  }
  state.writer->write(name, bytes);
  ++state.next;
  if (state.next == state.shard_end(shard)) {  // last tensor of a shard: finish the file now
    state.writer->close();
    state.writer.reset();
  }
}

void ShardedSafetensorsWriter::close() {
  Impl& state = *impl_;
  check(state.next == state.tensors.size(), "tensor ",
        quoted_name(state.next < state.tensors.size() ? state.tensors[state.next].name : ""),
        " declared but never written, ", state.folder.string());
  if (state.writer) {  // only the empty model's file is still open here
    state.writer->close();
    state.writer.reset();
  }
  if (state.shard_count() == 1) return;
  // The same layout transformers' save_pretrained writes: sorted keys, 2-space indent.
  nlohmann::json index;
  index["metadata"]["total_size"] = state.total_bytes;
  index["weight_map"] = nlohmann::json::object();
  for (size_t i = 0; i < state.tensors.size(); ++i)
    index["weight_map"][state.tensors[i].name] = state.shard_names[state.shard_of[i]];
  write_text_file(state.folder / kIndexFile, index.dump(2) + "\n");
}

void require_tokenizer(const ModelFolder& folder) {
  for (const std::filesystem::path& file : folder.auxiliary_files()) {
    if (file.filename() == "tokenizer.json" || file.filename() == "tokenizer.model") return;
  }
  fail("missing tokenizer (tokenizer.json or tokenizer.model), ", folder.path().string());
}

}  // namespace hlwq
