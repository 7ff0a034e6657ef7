#pragma once

#include <string>

namespace locomov::net::detail {

/// Empties the calling thread's OpenSSL error queue and returns the reason of
/// its oldest entry (the root cause), e.g. "no shared cipher". Returns
/// `fallback` when the queue was empty.
std::string take_openssl_error(const char* fallback = "unknown OpenSSL error");

}  // namespace locomov::net::detail
