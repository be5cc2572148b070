// safetensors: strict header validation (a file is untrusted input), mmap reading, and a
// streaming writer whose output the reference `safetensors` package loads.
#include "io/safetensors.h"

#include <algorithm>
#include <limits>
#include <ostream>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_writer.h"

namespace hlwq {
namespace {

using nlohmann::json;

// The reference crate's limit; a header this large is far beyond any real model's.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kMaxRank = 8;
// Containers nest at most root object > tensor entry > shape or data_offsets array.
constexpr int kMaxContainerDepth = 2;
constexpr char kMetadataKey[] = "__metadata__";

uint64_t read_u64_le(std::span<const std::byte> bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  return value;
}

// Multiplies with an overflow check; returns false on overflow.
bool checked_multiply(uint64_t a, uint64_t b, uint64_t& product) {
  return !__builtin_mul_overflow(a, b, &product);
}

// A first, streaming pass over the header that keeps no document: finds syntax errors,
// duplicate names, containers nested deeper than the format allows, and arrays longer than a
// shape can be. After it passes, building the document costs memory in proportion to the
// number of entries, whatever a hostile header holds. (nlohmann's parse callbacks could do
// this in one pass, but they rescan the parent object after every entry: quadratic time.)
// Top-level names in the order the header lists them (the writer's declaration order).
using EntryOrder = std::map<std::string, size_t, std::less<>>;

class HeaderStructureCheck : public nlohmann::json_sax<json> {
 public:
  explicit HeaderStructureCheck(std::string_view file_name) : file_name_(file_name) {}

  EntryOrder take_entry_order() { return std::move(entry_order_); }

  bool null() override { return element(); }
  bool boolean(bool) override { return element(); }
  bool number_integer(number_integer_t) override { return element(); }
  bool number_unsigned(number_unsigned_t) override { return element(); }
  bool number_float(number_float_t, const string_t&) override { return element(); }
  bool string(string_t&) override { return element(); }
  bool binary(binary_t&) override { return element(); }
  bool start_object(std::size_t) override { return start_container(); }
  bool start_array(std::size_t) override { return start_container(); }
  bool end_object() override { return end_container(); }
  bool end_array() override { return end_container(); }

  bool key(string_t& name) override {
    if (depth_ == 1) {
      entry_ = name;
      if (!entry_order_.emplace(name, entry_order_.size()).second)
        fail("duplicate entry ", quoted_name(name), " in header, ", file_name_);
    } else if (depth_ == 2) {
      field_ = name;
    }
    return element();
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    fail("header is not valid JSON (byte ", position, " of the header), ", file_name_);
  }

 private:
  // Depth counts open containers: 1 inside the root object, 2 inside a tensor entry, 3
  // inside its shape or data_offsets array.
  bool start_container() {
    check(depth_ <= kMaxContainerDepth, "header JSON nested deeper than the format allows in entry ",
          quoted_name(entry_), ", ", file_name_);
    element();
    ++depth_;
    if (depth_ == kMaxContainerDepth + 1) elements_ = 0;
    return true;
  }
  bool end_container() {
    --depth_;
    return true;
  }
  bool element() {
    if (depth_ == kMaxContainerDepth + 1 && ++elements_ > kMaxRank)
      fail(quoted_name(field_), " of entry ", quoted_name(entry_), " has more than ", kMaxRank,
           " elements, ", file_name_);
    return true;
  }

  std::string_view file_name_;
  int depth_ = 0;
  std::string entry_;  // the top-level key being read
  std::string field_;  // its key being read ("shape", ...)
  EntryOrder entry_order_;
  size_t elements_ = 0;
};

json parse_header_json(std::string_view text, std::string_view file_name, EntryOrder& entry_order) {
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows;
  // valid JSON never holds one (control characters inside strings must be escaped).
  const size_t nul = text.find('\0');
  check(nul == std::string_view::npos, "header is not valid JSON (NUL at byte ", nul,
        " of the header), ", file_name);
  HeaderStructureCheck structure_check(file_name);
  json header;
  try {
    json::sax_parse(text.begin(), text.end(), &structure_check);
    header = json::parse(text.begin(), text.end());
  } catch (const json::exception& error) {
    fail("header is not valid JSON (", quoted_name(error.what()), "), ", file_name);
  }
  check(header.is_object(), "header JSON is not an object, ", file_name);
  entry_order = structure_check.take_entry_order();
  return header;
}

uint64_t unsigned_value(const json& value) { return value.get<uint64_t>(); }

std::vector<int64_t> parse_shape(const json& shape, const std::string& name,
                                 std::string_view file_name) {
  check(shape.is_array(), "shape of tensor ", quoted_name(name), " is not an array, ",
        file_name);
  check(shape.size() <= kMaxRank, "tensor ", quoted_name(name), " has more than ", kMaxRank,
        " dimensions, ", file_name);
  std::vector<int64_t> dimensions;
  for (const json& dimension : shape) {
    check(dimension.is_number_unsigned(), "shape of tensor ", quoted_name(name),
          " holds something other than a non-negative integer, ", file_name);
    check(unsigned_value(dimension) <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
          "dimension ", unsigned_value(dimension), " of tensor ", quoted_name(name),
          " exceeds 2^63 - 1, ", file_name);
    dimensions.push_back(static_cast<int64_t>(unsigned_value(dimension)));
  }
  return dimensions;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry,
                              uint64_t data_area_size, std::string_view file_name) {
  check(entry.is_object(), "entry of tensor ", quoted_name(name), " is not an object, ",
        file_name);
  for (const auto& [key, value] : entry.items()) {
    check(key == "dtype" || key == "shape" || key == "data_offsets", "unexpected key ",
          quoted_name(key), " in tensor ", quoted_name(name), ", ", file_name);
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    check(entry.contains(key), "tensor ", quoted_name(name), " has no \"", key, "\", ",
          file_name);
  }

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  check(dtype.is_string(), "dtype of tensor ", quoted_name(name), " is not a string, ",
        file_name);
  const std::optional<DType> parsed_dtype = parse_dtype(dtype.get<std::string>());
  check(parsed_dtype.has_value(), "unknown dtype ", quoted_name(dtype.get<std::string>()),
        " of tensor ", quoted_name(name), ", ", file_name);
  info.dtype = *parsed_dtype;
  info.shape = parse_shape(entry["shape"], name, file_name);

  const json& offsets = entry["data_offsets"];
  check(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
            offsets[1].is_number_unsigned(),
        "data_offsets of tensor ", quoted_name(name),
        " is not a pair of non-negative integers, ", file_name);
  info.data_begin = unsigned_value(offsets[0]);
  info.data_end = unsigned_value(offsets[1]);
  check(info.data_begin <= info.data_end, "data_offsets of tensor ", quoted_name(name),
        " end before they begin, ", file_name);
  check(info.data_end <= data_area_size, "data of tensor ", quoted_name(name),
        " ends at byte ", info.data_end, " past the data area (", data_area_size,
        " bytes), ", file_name);

  uint64_t elements = 1;
  uint64_t expected_bytes = 0;
  bool fits = true;
  for (int64_t dimension : info.shape)
    fits = fits && checked_multiply(elements, static_cast<uint64_t>(dimension), elements);
  fits = fits && checked_multiply(elements, dtype_size(info.dtype), expected_bytes);
  check(fits, "shape of tensor ", quoted_name(name), " overflows 64 bits, ", file_name);
  check(expected_bytes == info.byte_size(), "tensor ", quoted_name(name), " has ",
        info.byte_size(), " bytes but its shape and dtype need ", expected_bytes, ", ",
        file_name);
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& metadata,
                                                  std::string_view file_name) {
  check(metadata.is_object(), "__metadata__ is not an object, ", file_name);
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : metadata.items()) {
    check(value.is_string(), "__metadata__ value of ", quoted_name(key), " is not a string, ",
          file_name);
    result.emplace(key, value.get<std::string>());
  }
  return result;
}

// The tensors, sorted by offset, must cover [0, data_area_size) exactly once.
void check_tiling(const std::vector<TensorInfo>& sorted, uint64_t data_area_size,
                  std::string_view file_name) {
  uint64_t covered_until = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& tensor : sorted) {
    if (tensor.data_begin < covered_until)
      fail("data of tensor ", quoted_name(tensor.name), " overlaps tensor ",
           quoted_name(previous->name), ", ", file_name);
    check(tensor.data_begin == covered_until, "unused bytes ", covered_until, "..",
          tensor.data_begin, " before tensor ", quoted_name(tensor.name), " in the data area, ",
          file_name);
    covered_until = tensor.data_end;
    previous = &tensor;
  }
  check(covered_until == data_area_size, "data area has ", data_area_size - covered_until,
        " bytes after the last tensor, ", file_name);
}

}  // namespace

std::ostream& operator<<(std::ostream& stream, QuotedName quoted) {
  constexpr size_t kMaxShown = 120;
  constexpr char kHex[] = "0123456789abcdef";
  stream << '"';
  for (size_t i = 0; i < quoted.name.size() && i < kMaxShown; ++i) {
    const auto byte = static_cast<unsigned char>(quoted.name[i]);
    if (byte < 0x20 || byte >= 0x7f || byte == '"' || byte == '\\') {
      stream << "\\x" << kHex[byte >> 4] << kHex[byte & 15];
    } else {
      stream << static_cast<char>(byte);
    }
  }
  if (quoted.name.size() > kMaxShown) stream << "...";
  return stream << '"';
}

uint64_t TensorInfo::element_count() const {
  uint64_t count = 1;
  for (int64_t dimension : shape) count *= static_cast<uint64_t>(dimension);
  return count;
}

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_bytes,
                                           std::string_view file_name) {
  check(file_bytes.size() >= 8, "file too short for a safetensors header (", file_bytes.size(),
        " bytes), ", file_name);
  const uint64_t header_size = read_u64_le(file_bytes);
  check(header_size <= kMaxHeaderBytes, "header length ", header_size, " exceeds the limit of ",
        kMaxHeaderBytes, " bytes, ", file_name);
  check(header_size <= file_bytes.size() - 8, "header length ", header_size,
        " runs past the end of the file (", file_bytes.size(), " bytes), ", file_name);

  SafetensorsHeader header;
  header.data_area_begin = 8 + header_size;
  const uint64_t data_area_size = file_bytes.size() - header.data_area_begin;
  const auto header_text = file_bytes.subspan(8, header_size);
  EntryOrder entry_order;
  const json root = parse_header_json(
      std::string_view(reinterpret_cast<const char*>(header_text.data()), header_text.size()),
      file_name, entry_order);

  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) {
      header.metadata = parse_metadata(value, file_name);
    } else {
      header.tensors.push_back(parse_tensor_entry(key, value, data_area_size, file_name));
    }
  }
  // Zero-size tensors may share an offset; those keep the order the header lists them in.
  std::sort(header.tensors.begin(), header.tensors.end(),
            [&entry_order](const TensorInfo& a, const TensorInfo& b) {
              return std::tuple(a.data_begin, a.data_end, entry_order.find(a.name)->second) <
                     std::tuple(b.data_begin, b.data_end, entry_order.find(b.name)->second);
            });
  check_tiling(header.tensors, data_area_size, file_name);
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile file;
  file.file_ = MappedFile::open(path);
  file.header_ = parse_safetensors_header(file.file_.bytes(), path.string());
  for (size_t i = 0; i < file.header_.tensors.size(); ++i)
    file.index_.emplace(file.header_.tensors[i].name, i);
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto found = index_.find(name);
  return found == index_.end() ? nullptr : &header_.tensors[found->second];
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& tensor) const {
  const uint64_t size = file_.bytes().size();
  check(tensor.data_begin <= tensor.data_end && tensor.data_end <= size &&
            header_.data_area_begin <= size - tensor.data_end,
        "tensor ", quoted_name(tensor.name), " lies outside the file, ", file_.path().string());
  return file_.bytes().subspan(header_.data_area_begin + tensor.data_begin, tensor.byte_size());
}

uint64_t TensorDeclaration::byte_size() const {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t dimension : shape) {
    check(dimension >= 0, "negative dimension in the declared shape, tensor ", quoted_name(name));
    check(checked_multiply(bytes, static_cast<uint64_t>(dimension), bytes),
          "declared shape overflows 64 bits, tensor ", quoted_name(name));
  }
  return bytes;
}

struct SafetensorsWriter::Impl {
  std::string path_text;
  std::vector<TensorDeclaration> tensors;
  std::vector<uint64_t> byte_sizes;
  FileWriter file;
  size_t next = 0;  // index of the tensor write() expects next

  Impl(const std::filesystem::path& path, std::vector<TensorDeclaration> declarations)
      : path_text(path.string()), tensors(std::move(declarations)), file(path) {}
};

namespace {

// A JSON string literal; throws for text that is not UTF-8 (JSON cannot hold it).
std::string json_string(const std::string& text, std::string_view path_text) {
  try {
    return json(text).dump();
  } catch (const json::exception&) {
    fail("name or metadata ", quoted_name(text), " is not valid UTF-8, ", path_text);
  }
}

// The header JSON for `tensors` laid out back to back in declaration order (the order the
// entries appear in, too), padded with spaces to a multiple of 8 bytes. Built as text
// because nlohmann's ordered objects take quadratic time to fill. Checks what the reader
// would reject.
std::string build_header(const std::vector<TensorDeclaration>& tensors,
                         std::span<const uint64_t> byte_sizes,
                         const std::map<std::string, std::string>& metadata,
                         std::string_view path_text) {
  std::string text = "{";
  if (!metadata.empty()) {
    text += concat("\"", kMetadataKey, "\":{");
    for (const auto& [key, value] : metadata) {
      if (text.back() != '{') text += ',';
      text += json_string(key, path_text) + ":" + json_string(value, path_text);
    }
    text += "}";
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorDeclaration& tensor = tensors[i];
    check(tensor.name != kMetadataKey, "tensor may not be named __metadata__, ", path_text);
    check(names.insert(tensor.name).second, "tensor ", quoted_name(tensor.name),
          " declared twice, ", path_text);
    check(tensor.shape.size() <= kMaxRank, "tensor ", quoted_name(tensor.name),
          " has more than ", kMaxRank, " dimensions, ", path_text);
    check(offset <= std::numeric_limits<uint64_t>::max() - byte_sizes[i],
          "tensors too large for one file, ", path_text);
    if (text.size() > 1) text += ',';
    text += json_string(tensor.name, path_text);
    text += concat(":{\"dtype\":\"", dtype_name(tensor.dtype), "\",\"shape\":[");
    for (size_t d = 0; d < tensor.shape.size(); ++d)
      text += concat(d == 0 ? "" : ",", tensor.shape[d]);
    text += concat("],\"data_offsets\":[", offset, ",", offset + byte_sizes[i], "]}");
    offset += byte_sizes[i];
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');
  check(text.size() <= kMaxHeaderBytes, "header would exceed ", kMaxHeaderBytes, " bytes, ",
        path_text);
  return text;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path,
                                     std::vector<TensorDeclaration> tensors,
                                     const std::map<std::string, std::string>& metadata) {
  std::vector<uint64_t> byte_sizes;
  for (const TensorDeclaration& tensor : tensors) byte_sizes.push_back(tensor.byte_size());
  // Validate before creating the file, so bad declarations leave nothing behind.
  const std::string header = build_header(tensors, byte_sizes, metadata, path.string());
  impl_ = std::make_unique<Impl>(path, std::move(tensors));
  impl_->byte_sizes = std::move(byte_sizes);
  std::byte length[8];
  for (size_t i = 0; i < 8; ++i) length[i] = static_cast<std::byte>(header.size() >> (8 * i));
  impl_->file.write(std::span<const std::byte>(length));
  impl_->file.write(header);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  Impl& state = *impl_;
  check(state.next < state.tensors.size(), "tensor ", quoted_name(name),
        " written after all declared tensors, ", state.path_text);
  const TensorDeclaration& expected = state.tensors[state.next];
  check(name == expected.name, "tensor ", quoted_name(name), " written out of order (expected ",
        quoted_name(expected.name), "), ", state.path_text);
  check(bytes.size() == state.byte_sizes[state.next], "tensor ", quoted_name(name), " has ",
        bytes.size(), " bytes, its declaration needs ", state.byte_sizes[state.next], ", ",
        state.path_text);
  state.file.write(bytes);
  ++state.next;
}

void SafetensorsWriter::close() {
  Impl& state = *impl_;
  check(state.next == state.tensors.size(), "tensor ",
        quoted_name(state.next < state.tensors.size() ? state.tensors[state.next].name : ""),
        " declared but never written, ", state.path_text);
  state.file.close();
}

}  // namespace hlwq
