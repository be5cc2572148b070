// A piece of text as byte offsets, the unit the pre-tokenizer steps hand to each other.
#pragma once

#include <cstddef>
#include <utility>

namespace hlwq {

// Byte offsets [begin, end) of one piece of the text.
using TextRange = std::pair<size_t, size_t>;

}  // namespace hlwq
