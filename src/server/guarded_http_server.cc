#include "server/guarded_http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>

namespace hlwq::server {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds until(Clock::time_point deadline) {
  return std::max(milliseconds(0), std::chrono::ceil<milliseconds>(deadline - Clock::now()));
}

// Waits up to `timeout` for the socket to be ready for `events`; true when it is, or when it is in
// error or closed (the next recv or send then says which).
bool wait_socket(socket_t sock, short events, milliseconds timeout) {
  pollfd entry{sock, events, 0};
  const int wait_ms = static_cast<int>(std::min<int64_t>(timeout.count(), INT_MAX));
  int ready = 0;
  do {
    ready = ::poll(&entry, 1, wait_ms);
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

// Whether the peer still holds the connection: nothing to read, or bytes to read (a next request),
// rather than the end of the stream or an error.
bool peer_connected(socket_t sock) {
  pollfd entry{sock, POLLIN, 0};
  if (::poll(&entry, 1, 0) <= 0) return true;
  if (entry.revents & POLLNVAL) return false;
  char byte = 0;
  const ssize_t got = ::recv(sock, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

void ip_and_port(const sockaddr_storage& address, socklen_t length, std::string& ip, int& port) {
  std::array<char, NI_MAXHOST> host{};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host.data(), host.size(), nullptr, 0,
                    NI_NUMERICHOST) == 0) {
    ip = host.data();
  }
  if (address.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &address, sizeof(in));
    port = ntohs(in.sin_port);
  } else if (address.ss_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &address, sizeof(in6));
    port = ntohs(in6.sin6_port);
  }
}

// One connection's socket as httplib reads requests from it and writes answers to it: reads are
// buffered (httplib reads a request's line and headers a byte at a time), bounded by the current
// request's deadline and byte budget.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, milliseconds write_timeout) : sock_(sock), write_timeout_(write_timeout) {}

  void start_request(Clock::time_point deadline, size_t max_bytes) {
    deadline_ = deadline;
    bytes_left_ = max_bytes;
    timed_out_ = false;
    too_large_ = false;
  }
  bool has_buffered() const { return offset_ < filled_; }
  bool timed_out() const { return timed_out_; }
  bool too_large() const { return too_large_; }
  Clock::time_point deadline() const { return deadline_; }

  bool is_readable() const override { return has_buffered() || wait_socket(sock_, POLLIN, until(deadline_)); }
  bool is_writable() const override { return wait_socket(sock_, POLLOUT, write_timeout_) && peer_connected(sock_); }

  ssize_t read(char* out, size_t size) override {
    if (!has_buffered()) {
      if (bytes_left_ == 0) {
        too_large_ = true;
        return -1;
      }
      if (!wait_socket(sock_, POLLIN, until(deadline_))) {
        timed_out_ = Clock::now() >= deadline_;
        return -1;
      }
      ssize_t got = 0;
      do {
        got = ::recv(sock_, buffer_.data(), std::min(buffer_.size(), bytes_left_), MSG_DONTWAIT);
      } while (got < 0 && errno == EINTR);
      if (got <= 0) return got;
      offset_ = 0;
      filled_ = static_cast<size_t>(got);
      bytes_left_ -= filled_;
    }
    const size_t count = std::min(size, filled_ - offset_);
    std::memcpy(out, buffer_.data() + offset_, count);
    offset_ += count;
    return static_cast<ssize_t>(count);
  }

  ssize_t write(const char* data, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t sent = 0;
    do {
      sent = ::send(sock_, data, size, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&address), &length) == 0) ip_and_port(address, length, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&address), &length) == 0) ip_and_port(address, length, ip, port);
  }
  socket_t socket() const override { return sock_; }

 private:
  socket_t sock_;
  milliseconds write_timeout_;
  Clock::time_point deadline_ = Clock::now();
  size_t bytes_left_ = 0;
  bool timed_out_ = false;
  bool too_large_ = false;
  std::array<char, 4096> buffer_{};
  size_t offset_ = 0;
  size_t filled_ = 0;
};

// The connection this worker thread serves (null on other threads).
thread_local ConnectionStream* current_connection = nullptr;

// A request that was too large may still be arriving: its rest is read and dropped (until its
// deadline) before the socket closes, so that the client reads the answer rather than a reset.
void drain(socket_t sock, Clock::time_point deadline) {
  ::shutdown(sock, SHUT_WR);
  std::array<char, 16384> dropped{};
  while (wait_socket(sock, POLLIN, until(deadline))) {
    const ssize_t got = ::recv(sock, dropped.data(), dropped.size(), MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) break;
  }
}

}  // namespace

bool GuardedHttpServer::client_connected() {
  return current_connection == nullptr || peer_connected(current_connection->socket());
}

bool GuardedHttpServer::request_timed_out() { return current_connection != nullptr && current_connection->timed_out(); }

bool GuardedHttpServer::request_too_large() { return current_connection != nullptr && current_connection->too_large(); }

bool GuardedHttpServer::wait_for_request(socket_t sock) const {
  // In short waits, so that a connection left open does not hold up stop() for the whole timeout.
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
  while (svr_sock_ != INVALID_SOCKET) {
    const milliseconds left = until(deadline);
    if (left.count() == 0) return false;
    if (wait_socket(sock, POLLIN, std::min(left, milliseconds(100)))) return true;
  }
  return false;
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  ConnectionStream stream(sock, milliseconds(write_timeout_sec_ * 1000 + write_timeout_usec_ / 1000));
  current_connection = &stream;
  bool ok = false;
  // As httplib's own loop: up to keep_alive_max_count_ requests, the last one answered with
  // "Connection: close".
  for (size_t left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
    if (!stream.has_buffered() && !wait_for_request(sock)) break;
    stream.start_request(Clock::now() + request_timeout_, request_max_bytes_);
    bool connection_closed = false;
    ok = process_request(stream, left == 1, connection_closed, nullptr);
    if (ok && stream.too_large()) drain(sock, stream.deadline());
    if (!ok || connection_closed || stream.timed_out() || stream.too_large()) break;
  }
  current_connection = nullptr;
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

}  // namespace hlwq::server
