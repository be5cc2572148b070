// httplib::Server with the limits that Debian's cpp-httplib 0.11 lacks. That version bounds each
// wait for a request's bytes (its read timeout) but not the whole request, so a client that sends a
// byte now and then holds a worker thread for ever (slowloris); it caps a body's Content-Length but
// reads a chunked body of any size into memory; and a handler cannot ask whether its client is still
// connected. GuardedHttpServer takes over each connection's keep-alive loop from httplib::Server (its
// process_and_close_socket: the same loop around the same process_request, over a socket stream of
// its own) and adds:
// - a deadline for each request: its line, headers and body must arrive within the request timeout
//   of its first byte, else the answer is 408 and the connection closes;
// - a cap on each request's bytes (line, headers and body, chunked or not): past it the answer is
//   413 and the connection closes;
// - client_connected(), which a handler calls on its own thread to learn whether its client went away.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>

namespace hlwq::server {

class GuardedHttpServer : public httplib::Server {
 public:
  // Each request must arrive whole within `timeout` of its first byte.
  void set_request_timeout(std::chrono::milliseconds timeout) { request_timeout_ = timeout; }
  // A request's line, headers and body may hold at most `bytes`.
  void set_request_max_bytes(size_t bytes) { request_max_bytes_ = bytes; }

  // On the thread that answers a request: whether its client still holds the connection (false once
  // it closed or reset it). True on any other thread.
  static bool client_connected();
  // On the thread that answers a request (the error handler's): whether the request was cut short
  // because it went past the request timeout, or past the request bytes.
  static bool request_timed_out();
  static bool request_too_large();

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Waits up to the keep-alive timeout for the next request's first byte; false when none came or
  // the server stops.
  bool wait_for_request(socket_t sock) const;

  std::chrono::milliseconds request_timeout_{20000};
  size_t request_max_bytes_ = size_t{17} << 20;
};

}  // namespace hlwq::server
