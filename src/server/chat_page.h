// The chat page served at GET /: one self-contained HTML file (no external scripts or styles).
#pragma once

#include <string_view>

namespace hlwq::server {

std::string_view chat_page_html();

}  // namespace hlwq::server
