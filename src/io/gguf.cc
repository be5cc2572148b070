// GGUF reading: strict parsing of the header, metadata and tensor directory (every count is
// checked against the bytes left before anything is allocated), and the memory-mapped file.
#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace hlwq {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr int kMaxArrayDepth = 16;       // nesting of metadata arrays; bounds the recursion
// All metadata values together (array elements included). Real models have a few million
// (vocabulary, merges); the limit keeps a crafted file from making gigabytes of JSON.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 26;
// Containers are reserved up to this many entries and grow past it only as entries are read,
// so a corrupt count in a large file cannot claim memory the file does not back.
constexpr uint64_t kReserveLimit = uint64_t{1} << 16;
constexpr uint64_t kMaxElementCount = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Smallest tensor info: name length, n_dims, type, offset (an empty name, no dims).
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
// Smallest key-value pair: key length, value type, a one-byte value.
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;

// Bytes of the smallest encoding of one value; bounds array counts before reserving memory.
uint64_t minimum_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: return 8;  // length
    case ValueType::ARRAY: return 12;  // element type and count
  }
  return 1;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length;
    uint32_t code_point;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
      code_point = lead & 0x1fu;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      code_point = lead & 0x0fu;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      code_point = lead & 0x07u;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xc0) != 0x80) return false;
      code_point = code_point << 6 | (continuation & 0x3fu);
    }
    const bool overlong = (length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000);
    const bool surrogate = code_point >= 0xd800 && code_point <= 0xdfff;
    if (overlong || surrogate || code_point > 0x10ffff) return false;
    i += length;
  }
  return true;
}

// A key or name from the file made safe for a one-line message: control bytes (and all bytes
// >= 0x80 when the text is not valid UTF-8) become \xNN; long text is cut at 120 bytes.
std::string printable(std::string_view text) {
  constexpr size_t kMaxLength = 120;
  const bool keep_high_bytes = is_valid_utf8(text);
  std::string result;
  for (size_t i = 0; i < text.size() && i < kMaxLength; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7f || (byte >= 0x80 && !keep_high_bytes)) {
      constexpr char kHex[] = "0123456789abcdef";
      result += "\\x";
      result += kHex[byte >> 4];
      result += kHex[byte & 15];
    } else {
      result += static_cast<char>(byte);
    }
  }
  if (text.size() > kMaxLength) result += "...";
  return result;
}

// Reads little-endian values from the file's bytes; every read checks the bytes left.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, std::string_view file_name)
      : bytes_(bytes), file_name_(file_name) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return bytes_.size() - position_; }
  std::string_view file_name() const { return file_name_; }

  template <class Scalar>
  Scalar read(std::string_view what) {
    need(sizeof(Scalar), what);
    Scalar value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(Scalar));
    position_ += sizeof(Scalar);
    return value;
  }

  std::string read_string(std::string_view what) {
    const uint64_t length = read<uint64_t>(what);
    if (length > remaining()) {
      fail("length ", length, " of ", printable(what), " at offset ", position_ - 8, " exceeds the ",
           remaining(), " bytes left, ", file_name_);
    }
    std::string text(reinterpret_cast<const char*>(bytes_.data() + position_), length);
    position_ += length;
    return text;
  }

  // Checks that `count` items of at least `item_bytes` each can fit in the bytes left.
  void check_count(uint64_t count, uint64_t item_bytes, std::string_view what) const {
    if (count > remaining() / item_bytes) {
      fail(what, " ", count, " at offset ", position_, " cannot fit in the ", remaining(),
           " bytes left, ", file_name_);
    }
  }

 private:
  void need(uint64_t count, std::string_view what) const {
    if (count > remaining()) {
      fail("file truncated: ", printable(what), " at offset ", position_, " needs ", count, " bytes, ",
           remaining(), " left, ", file_name_);
    }
  }

  std::span<const std::byte> bytes_;
  std::string_view file_name_;
  uint64_t position_ = 0;
};

class MetadataReader {
 public:
  explicit MetadataReader(Reader& reader) : reader_(reader) {}

  nlohmann::json read_value(uint32_t raw_type, const std::string& key, int depth) {
    if (raw_type >= kValueTypeCount) {
      fail("unknown metadata value type ", raw_type, " for key '", printable(key), "', ", reader_.file_name());
    }
    check(++value_count_ <= kMaxMetadataValues, "metadata has more than ", kMaxMetadataValues,
          " values, ", reader_.file_name());
    switch (static_cast<ValueType>(raw_type)) {
      case ValueType::U8: return reader_.read<uint8_t>(key);
      case ValueType::I8: return reader_.read<int8_t>(key);
      case ValueType::U16: return reader_.read<uint16_t>(key);
      case ValueType::I16: return reader_.read<int16_t>(key);
      case ValueType::U32: return reader_.read<uint32_t>(key);
      case ValueType::I32: return reader_.read<int32_t>(key);
      case ValueType::U64: return reader_.read<uint64_t>(key);
      case ValueType::I64: return reader_.read<int64_t>(key);
      case ValueType::F32: return static_cast<double>(reader_.read<float>(key));
      case ValueType::F64: return reader_.read<double>(key);
      case ValueType::BOOL: {
        const uint8_t value = reader_.read<uint8_t>(key);
        if (value > 1) {
          fail("bool value ", static_cast<int>(value), " is neither 0 nor 1 for key '", printable(key), "', ",
               reader_.file_name());
        }
        return value == 1;
      }
      case ValueType::STRING: return reader_.read_string(key);
      case ValueType::ARRAY: return read_array(key, depth);
    }
    fail("unknown metadata value type ", raw_type, ", ", reader_.file_name());
  }

 private:
  nlohmann::json read_array(const std::string& key, int depth) {
    if (depth >= kMaxArrayDepth) {
      fail("metadata arrays nested deeper than ", kMaxArrayDepth, " for key '", printable(key), "', ",
           reader_.file_name());
    }
    const uint32_t element_type = reader_.read<uint32_t>(key);
    if (element_type >= kValueTypeCount) {
      fail("unknown metadata array element type ", element_type, " for key '", printable(key), "', ",
           reader_.file_name());
    }
    const uint64_t count = reader_.read<uint64_t>(key);
    reader_.check_count(count, minimum_value_bytes(static_cast<ValueType>(element_type)),
                        concat("array length for key '", printable(key), "'"));
    nlohmann::json array = nlohmann::json::array();
    auto& elements = array.get_ref<nlohmann::json::array_t&>();
    elements.reserve(std::min<uint64_t>(count, kReserveLimit));
    for (uint64_t i = 0; i < count; ++i) elements.push_back(read_value(element_type, key, depth + 1));
    return array;
  }

  Reader& reader_;
  uint64_t value_count_ = 0;
};

uint64_t read_alignment(const nlohmann::json& value, uint32_t raw_type, std::string_view file_name) {
  check(raw_type == static_cast<uint32_t>(ValueType::U32), "general.alignment must be a uint32, ",
        file_name);
  const uint64_t alignment = value.get<uint64_t>();
  check(std::has_single_bit(alignment), "general.alignment ", alignment, " is not a power of two, ",
        file_name);
  return alignment;
}

void read_metadata(Reader& reader, uint64_t count, GgufContents& contents) {
  MetadataReader values(reader);
  for (uint64_t i = 0; i < count; ++i) {
    std::string key = reader.read_string("metadata key");
    check(!key.empty(), "empty metadata key at entry ", i, ", ", reader.file_name());
    if (contents.metadata.contains(key)) {
      fail("duplicate metadata key '", printable(key), "', ", reader.file_name());
    }
    const uint32_t raw_type = reader.read<uint32_t>(key);
    nlohmann::json value = values.read_value(raw_type, key, 0);
    if (key == "general.alignment") contents.alignment = read_alignment(value, raw_type, reader.file_name());
    contents.metadata[std::move(key)] = std::move(value);
  }
}

GgufTensorInfo read_tensor_info(Reader& reader, uint64_t index) {
  GgufTensorInfo tensor;
  tensor.name = reader.read_string("tensor name");
  check(!tensor.name.empty(), "tensor ", index, " has an empty name, ", reader.file_name());
  check(is_valid_utf8(tensor.name), "tensor ", index, " name is not valid UTF-8, ", reader.file_name());
  const std::string shown_name = printable(tensor.name);
  const uint32_t dimension_count = reader.read<uint32_t>(tensor.name);
  check(dimension_count <= 4, "tensor ", shown_name, " has ", dimension_count, " dimensions (at most 4), ",
        reader.file_name());
  uint64_t element_count = 1;
  for (uint32_t d = 0; d < dimension_count; ++d) {
    const uint64_t dimension = reader.read<uint64_t>(tensor.name);
    check(dimension > 0, "tensor ", shown_name, " has a zero dimension, ", reader.file_name());
    check(dimension <= kMaxElementCount / element_count, "tensor ", shown_name,
          " has more than 2^63 elements, ", reader.file_name());
    element_count *= dimension;
    tensor.dims.push_back(dimension);
  }
  tensor.type = reader.read<uint32_t>(tensor.name);
  tensor.offset = reader.read<uint64_t>(tensor.name);
  return tensor;
}

// Sets byte_size from the type (0 when unknown) and checks the row length fits the blocks.
void size_tensor(GgufTensorInfo& tensor, std::string_view file_name) {
  if (!gguf_type_is_known(tensor.type)) return;  // kept, fails when read
  const std::string type_name = gguf_type_name(tensor.type);
  const auto type = static_cast<GgufTensorType>(tensor.type);
  const uint64_t block_elements = gguf_block_elements(type);
  const uint64_t block_bytes = gguf_block_bytes(type);
  const uint64_t row_length = tensor.dims.empty() ? 1 : tensor.dims[0];
  check(row_length % block_elements == 0, "row length ", row_length, " of tensor ", printable(tensor.name),
        " is not a multiple of the ", type_name, " block size ", block_elements, ", ", file_name);
  const uint64_t blocks = tensor.element_count() / block_elements;
  check(blocks <= std::numeric_limits<uint64_t>::max() / block_bytes, "tensor ", printable(tensor.name),
        " is too large, ", file_name);
  tensor.byte_size = blocks * block_bytes;
}

void check_placement(const GgufContents& contents, uint64_t file_size, std::string_view file_name) {
  const uint64_t data_size = file_size > contents.data_area_begin ? file_size - contents.data_area_begin : 0;
  for (const GgufTensorInfo& tensor : contents.tensors) {
    check(tensor.offset % contents.alignment == 0, "offset ", tensor.offset, " of tensor ", printable(tensor.name),
          " is not a multiple of the alignment ", contents.alignment, ", ", file_name);
    check(tensor.offset <= data_size && tensor.byte_size <= data_size - tensor.offset, "tensor ",
          printable(tensor.name), " (offset ", tensor.offset, ", ", tensor.byte_size,
          " bytes) extends past the end of the file, ", file_name);
  }
  std::vector<const GgufTensorInfo*> order;
  for (const GgufTensorInfo& tensor : contents.tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (size_t i = 1; i < order.size(); ++i) {
    check(order[i - 1]->name != order[i]->name, "duplicate tensor name ", printable(order[i]->name), ", ", file_name);
  }
  std::erase_if(order, [](auto* tensor) { return tensor->byte_size == 0; });
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo& before = *order[i - 1];
    check(before.offset + before.byte_size <= order[i]->offset, "tensors ", printable(before.name), " and ",
          printable(order[i]->name), " overlap, ", file_name);
  }
}

}  // namespace

uint64_t GgufTensorInfo::element_count() const {
  return std::accumulate(dims.begin(), dims.end(), uint64_t{1}, std::multiplies<>());
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

GgufContents parse_gguf(std::span<const std::byte> file_bytes, std::string_view file_name) {
  Reader reader(file_bytes, file_name);
  GgufContents contents;
  check(reader.read<uint32_t>("magic") == kMagic, "not a GGUF file (no 'GGUF' magic), ", file_name);
  contents.version = reader.read<uint32_t>("version");
  check(contents.version != 0x02000000u && contents.version != 0x03000000u,
        "big-endian GGUF files are not supported, ", file_name);
  check(contents.version == 2 || contents.version == 3, "unsupported GGUF version ", contents.version,
        " (hlwq reads versions 2 and 3), ", file_name);
  const uint64_t tensor_count = reader.read<uint64_t>("tensor count");
  const uint64_t key_value_count = reader.read<uint64_t>("metadata count");
  reader.check_count(tensor_count, kMinTensorInfoBytes, "tensor count");
  reader.check_count(key_value_count, kMinKeyValueBytes, "metadata count");

  read_metadata(reader, key_value_count, contents);
  reader.check_count(tensor_count, kMinTensorInfoBytes, "tensor count");
  contents.tensors.reserve(std::min(tensor_count, kReserveLimit));
  for (uint64_t i = 0; i < tensor_count; ++i) contents.tensors.push_back(read_tensor_info(reader, i));
  for (GgufTensorInfo& tensor : contents.tensors) size_tensor(tensor, file_name);

  // The data area starts at the next multiple of the alignment (past the end of the file only
  // when no tensor has bytes, as with a metadata-only file).
  const uint64_t end_of_header = reader.position();
  contents.data_area_begin = (end_of_header + contents.alignment - 1) / contents.alignment * contents.alignment;
  check_placement(contents, file_bytes.size(), file_name);
  return contents;
}

std::span<const std::byte> gguf_tensor_data(const GgufContents& contents, const GgufTensorInfo& tensor,
                                            std::span<const std::byte> file_bytes,
                                            std::string_view file_name) {
  check(gguf_type_is_known(tensor.type), "tensor ", printable(tensor.name), " has unknown type ", tensor.type,
        ", ", file_name);
  const uint64_t begin = contents.data_area_begin + tensor.offset;
  check(begin >= tensor.offset && begin <= file_bytes.size() &&
            tensor.byte_size <= file_bytes.size() - begin,
        "tensor ", printable(tensor.name), " lies outside the file, ", file_name);
  return file_bytes.subspan(begin, tensor.byte_size);
}

std::vector<float> dequantize_gguf_tensor(const GgufContents& contents, const GgufTensorInfo& tensor,
                                          std::span<const std::byte> file_bytes,
                                          std::string_view file_name) {
  const auto type = static_cast<GgufTensorType>(tensor.type);
  check(gguf_type_is_supported(type), "cannot dequantize tensor ", printable(tensor.name), " of type ",
        gguf_type_name(tensor.type), " (not supported), ", file_name);
  const std::span<const std::byte> bytes = gguf_tensor_data(contents, tensor, file_bytes, file_name);
  check(tensor.byte_size == tensor.element_count() / gguf_block_elements(type) * gguf_block_bytes(type),
        "size of tensor ", printable(tensor.name), " does not match its shape, ", file_name);
  std::vector<float> values(tensor.element_count());
  dequantize_gguf(type, bytes, values);
  return values;
}

std::string dump_gguf_metadata(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile file;
  file.file_ = MappedFile::open(path);
  file.contents_ = parse_gguf(file.file_.bytes(), path.string());
  const auto& tensors = file.contents_.tensors;
  file.by_name_.resize(tensors.size());
  std::iota(file.by_name_.begin(), file.by_name_.end(), size_t{0});
  std::sort(file.by_name_.begin(), file.by_name_.end(),
            [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  return file;
}

const GgufTensorInfo* GgufFile::find(std::string_view name) const {
  const auto& tensors = contents_.tensors;
  const auto found = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                                      [&](size_t index, std::string_view wanted) {
                                        return tensors[index].name < wanted;
                                      });
  if (found == by_name_.end() || tensors[*found].name != name) return nullptr;
  return &tensors[*found];
}

std::span<const std::byte> GgufFile::data(const GgufTensorInfo& tensor) const {
  return gguf_tensor_data(contents_, tensor, file_.bytes(), file_.path().string());
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& tensor) const {
  return dequantize_gguf_tensor(contents_, tensor, file_.bytes(), file_.path().string());
}

}  // namespace hlwq
