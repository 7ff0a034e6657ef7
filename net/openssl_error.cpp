#include "net/openssl_error.hpp"

#include <openssl/err.h>

#include <system_error>

namespace locomov::net::detail {

std::string take_openssl_error(const char* fallback) {
  std::string reason;
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    if (!reason.empty()) {
      continue;
    }
    // OpenSSL will not name system errors (errno) itself, see ERR_reason_error_string(3).
    if (ERR_SYSTEM_ERROR(code)) {
      reason = std::generic_category().message(ERR_GET_REASON(code));
    } else if (const char* text = ERR_reason_error_string(code); text != nullptr) {
      reason = text;
    } else {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof(buf));
      reason = buf;
    }
  }
  return reason.empty() ? std::string{fallback} : reason;
}

}  // namespace locomov::net::detail
