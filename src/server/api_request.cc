#include "server/api_request.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace hlwq::server {

namespace {

using nlohmann::json;

ApiError bad_request(std::string message, std::string code = "invalid_value") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(code)};
}

ApiError wrong_type(const std::string& field, const char* wanted) {
  return bad_request("'" + field + "' must be " + wanted, "invalid_type");
}

// A field that is absent or null counts as not given (OpenAI's clients send null for "default").
const json* field(const json& object, const char* name) {
  const auto found = object.find(name);
  return found == object.end() || found->is_null() ? nullptr : &*found;
}

// Reads a number field into `out` within [low, high]; an error when it is of another type or out
// of range. Integers are numbers too (temperature 1 is 1.0).
std::optional<ApiError> read_number(const json& object, const char* name, double low, double high, float& out) {
  const json* value = field(object, name);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) return wrong_type(name, "a number");
  const double number = value->get<double>();
  if (!std::isfinite(number) || number < low || number > high) {
    return bad_request(concat("'", name, "' must be between ", low, " and ", high, ", got ", value->dump()));
  }
  out = static_cast<float>(number);
  return std::nullopt;
}

std::optional<ApiError> read_sampling(const json& object, const RequestLimits& limits, SamplingRequest& out) {
  out.sampler.temperature = 1.0f;
  out.sampler.top_p = 1.0f;
  if (const json* model = field(object, "model")) {
    if (!model->is_string()) return wrong_type("model", "a string");
    out.model = model->get<std::string>();
  }
  // max_completion_tokens is the newer name of the same limit.
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    const json* value = field(object, name);
    if (value == nullptr) continue;
    if (!value->is_number_integer()) return wrong_type(name, "an integer");
    if (value->is_number_unsigned() ? value->get<uint64_t>() > static_cast<uint64_t>(limits.context_length)
                                    : value->get<int64_t>() > limits.context_length) {
      return bad_request("'" + std::string(name) + "' is " + value->dump() + ", beyond the context of " +
                             std::to_string(limits.context_length) + " tokens",
                         "context_length_exceeded");
    }
    if (value->get<int64_t>() < 1) {
      return bad_request("'" + std::string(name) + "' must be at least 1, got " + value->dump());
    }
    out.max_tokens = value->get<int64_t>();
  }
  if (auto error = read_number(object, "temperature", 0.0, 2.0, out.sampler.temperature)) return error;
  if (auto error = read_number(object, "top_p", 0.0, 1.0, out.sampler.top_p)) return error;
  if (out.sampler.top_p <= 0.0f) return bad_request("'top_p' must be above 0");
  if (auto error = read_number(object, "min_p", 0.0, 1.0, out.sampler.min_p)) return error;
  if (const json* top_k = field(object, "top_k")) {
    if (!top_k->is_number_integer()) return wrong_type("top_k", "an integer");
    if (top_k->is_number_unsigned() ? top_k->get<uint64_t>() > std::numeric_limits<int32_t>::max()
                                    : top_k->get<int64_t>() < 0) {
      return bad_request("'top_k' must be between 0 and 2147483647, got " + top_k->dump());
    }
    out.sampler.top_k = top_k->get<int32_t>();
  }
  if (const json* seed = field(object, "seed")) {
    if (!seed->is_number_integer()) return wrong_type("seed", "an integer");
    // Negative seeds are fine: their bits make the generator's seed.
    out.sampler.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                  : static_cast<uint64_t>(seed->get<int64_t>());
  }
  if (const json* stop = field(object, "stop")) {
    if (stop->is_string()) {
      out.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& item : *stop) {
        if (!item.is_string()) return wrong_type("stop", "a string or a list of strings");
        out.stop.push_back(item.get<std::string>());
      }
    } else {
      return wrong_type("stop", "a string or a list of strings");
    }
    if (out.stop.size() > limits.max_stop_strings) {
      return bad_request("'stop' has " + std::to_string(out.stop.size()) + " strings, at most " +
                         std::to_string(limits.max_stop_strings) + " are allowed");
    }
    for (const std::string& text : out.stop) {
      if (text.empty()) return bad_request("'stop' strings must not be empty");
    }
  }
  if (const json* stream = field(object, "stream")) {
    if (!stream->is_boolean()) return wrong_type("stream", "a boolean");
    out.stream = stream->get<bool>();
  }
  if (const json* options = field(object, "stream_options")) {
    if (!options->is_object()) return wrong_type("stream_options", "an object");
    if (const json* usage = field(*options, "include_usage")) {
      if (!usage->is_boolean()) return wrong_type("stream_options.include_usage", "a boolean");
      out.include_usage = usage->get<bool>();
    }
  }
  if (const json* n = field(object, "n")) {
    if (!n->is_number_integer()) return wrong_type("n", "an integer");
    if (*n != 1) return bad_request("'n' must be 1: one choice per request is supported");
  }
  // Fields this server does not implement are refused rather than silently ignored when they ask
  // for something (a penalty other than 0, log-probabilities).
  for (const char* name : {"frequency_penalty", "presence_penalty"}) {
    if (const json* value = field(object, name)) {
      if (!value->is_number()) return wrong_type(name, "a number");
      if (value->get<double>() != 0.0) return bad_request("'" + std::string(name) + "' is not supported (only 0)");
    }
  }
  for (const char* name : {"logprobs", "echo"}) {
    if (const json* value = field(object, name)) {
      if (!(value->is_boolean() && !value->get<bool>()) && !(value->is_number_integer() && *value == 0)) {
        return bad_request("'" + std::string(name) + "' is not supported");
      }
    }
  }
  return std::nullopt;
}

// The offset of the first byte of `text` that is not part of a well-formed UTF-8 character, if any.
std::optional<size_t> first_invalid_utf8(std::string_view text) {
  for (size_t position = 0; position < text.size();) {
    const DecodedCodePoint decoded = decode_utf8(text, position);
    // decode_utf8 gives a one-byte U+FFFD for a malformed byte (a real U+FFFD takes three).
    if (decoded.value == 0xFFFD && decoded.length == 1) return position;
    position += decoded.length;
  }
  return std::nullopt;
}

// The body as a JSON object, or the 400 that says why not.
std::variant<json, ApiError> parse_object(std::string_view body) {
  json object = json::parse(body.begin(), body.end(), nullptr, false);
  if (object.is_discarded()) {
    // JSON text is UTF-8; a client that sends other bytes (Latin-1, a cut character) learns where.
    if (const std::optional<size_t> at = first_invalid_utf8(body)) {
      return bad_request(concat("the request body is not valid JSON: it is not UTF-8 (byte ", *at, " is not part of a ",
                                "UTF-8 character)"),
                         "invalid_json");
    }
    return bad_request("the request body is not valid JSON", "invalid_json");
  }
  if (!object.is_object()) return bad_request("the request body must be a JSON object", "invalid_json");
  return object;
}

// A message's content: a string, or OpenAI's list of parts of which only text parts are supported.
std::optional<ApiError> read_content(const json& content, size_t index, std::string& out) {
  const std::string where = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) {
    out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return wrong_type(where, "a string or a list of text parts");
  for (const json& part : content) {
    if (!part.is_object()) return wrong_type(where, "a string or a list of text parts");
    const json* type = field(part, "type");
    const json* text = field(part, "text");
    if (type == nullptr || *type != "text") return bad_request(where + " may only hold parts of type \"text\"");
    if (text == nullptr || !text->is_string()) return wrong_type(where + "[].text", "a string");
    out += text->get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Parsed<ChatRequest> parse_chat_request(std::string_view body, const RequestLimits& limits) {
  auto parsed = parse_object(body);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
  const json& object = std::get<json>(parsed);
  ChatRequest request;
  const json* messages = field(object, "messages");
  if (messages == nullptr) return bad_request("'messages' is required", "missing_field");
  if (!messages->is_array()) return wrong_type("messages", "a list of messages");
  if (messages->empty()) return bad_request("'messages' must not be empty");
  if (messages->size() > limits.max_messages) {
    return bad_request("'messages' has " + std::to_string(messages->size()) + " messages, at most " +
                       std::to_string(limits.max_messages) + " are allowed");
  }
  for (size_t index = 0; index < messages->size(); ++index) {
    const json& message = (*messages)[index];
    const std::string where = "messages[" + std::to_string(index) + "]";
    if (!message.is_object()) return wrong_type(where, "an object");
    const json* role = field(message, "role");
    if (role == nullptr) return bad_request(where + ".role is required", "missing_field");
    if (!role->is_string()) return wrong_type(where + ".role", "a string");
    const std::string role_text = role->get<std::string>();
    if (role_text != "system" && role_text != "user" && role_text != "assistant" && role_text != "developer") {
      return bad_request(where + ".role must be system, developer, user or assistant, got " + role->dump());
    }
    ChatMessage out{role_text == "developer" ? "system" : role_text, ""};
    const json* content = field(message, "content");
    if (content == nullptr) return bad_request(where + ".content is required", "missing_field");
    if (auto error = read_content(*content, index, out.content)) return *error;
    request.messages.push_back(std::move(out));
  }
  if (auto error = read_sampling(object, limits, request.sampling)) return *error;
  return request;
}

Parsed<CompletionRequest> parse_completion_request(std::string_view body, const RequestLimits& limits) {
  auto parsed = parse_object(body);
  if (auto* error = std::get_if<ApiError>(&parsed)) return *error;
  const json& object = std::get<json>(parsed);
  CompletionRequest request;
  const json* prompt = field(object, "prompt");
  if (prompt == nullptr) return bad_request("'prompt' is required", "missing_field");
  // A list holding one string is what some clients send for a single prompt.
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) prompt = &(*prompt)[0];
  if (!prompt->is_string()) return wrong_type("prompt", "a string (or a list of one string)");
  request.prompt = prompt->get<std::string>();
  if (request.prompt.empty()) return bad_request("'prompt' must not be empty");
  if (const json* suffix = field(object, "suffix")) {
    if (!suffix->is_string() || !suffix->get<std::string>().empty()) return bad_request("'suffix' is not supported");
  }
  if (auto error = read_sampling(object, limits, request.sampling)) return *error;
  return request;
}

std::optional<ApiError> check_fits_context(int64_t prompt_tokens, std::optional<int64_t> max_tokens,
                                           int64_t context_length) {
  if (prompt_tokens >= context_length) {
    return bad_request("the prompt has " + std::to_string(prompt_tokens) + " tokens, which leaves no room in the " +
                           "context of " + std::to_string(context_length) + " tokens",
                       "context_length_exceeded");
  }
  if (max_tokens && prompt_tokens + *max_tokens > context_length) {
    return bad_request("the prompt's " + std::to_string(prompt_tokens) + " tokens and max_tokens " +
                           std::to_string(*max_tokens) + " exceed the context of " + std::to_string(context_length) +
                           " tokens",
                       "context_length_exceeded");
  }
  return std::nullopt;
}

}  // namespace hlwq::server
