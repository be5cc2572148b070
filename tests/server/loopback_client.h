// A raw-socket HTTP client for the tests that talk to a server on a loopback port (the guarded
// server in-process, `hlwq serve` as a process): connect, send a whole request, read the answer.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace hlwq::loopback {

// A connected TCP socket to 127.0.0.1:port, or -1 when nothing accepts there.
inline int connect_to(int port) {
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(sock);
    return -1;
  }
  return sock;
}

// Sends all of text (false when the peer stops taking it).
inline bool send_all(int sock, const std::string& text) {
  for (size_t sent = 0; sent < text.size();) {
    const ssize_t count = ::send(sock, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (count <= 0) return false;
    sent += static_cast<size_t>(count);
  }
  return true;
}

// What the server sends until it closes the connection, `limit` passes, or (stop_after > 0) at
// least stop_after bytes have come.
inline std::string read_until_closed(int sock, std::chrono::milliseconds limit, size_t stop_after = 0) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buffer[4096];
  while (std::chrono::steady_clock::now() < deadline && (stop_after == 0 || text.size() < stop_after)) {
    pollfd entry{sock, POLLIN, 0};
    if (::poll(&entry, 1, 50) <= 0) continue;
    const ssize_t count = ::recv(sock, buffer, sizeof(buffer), 0);
    if (count <= 0) break;
    text.append(buffer, static_cast<size_t>(count));
  }
  return text;
}

}  // namespace hlwq::loopback
