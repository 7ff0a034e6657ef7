#pragma once

#include <memory>
#include <optional>
#include <string>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// What `locomovctl confo` builds from its flags.
struct confo_fields {
  std::string device_name;
  std::string ssid;
  std::optional<std::string> email;
  std::optional<std::int64_t> hash;
  std::int64_t timestamp = 0;
  std::optional<std::string> coords;
};

/// A confo as the meters' firmware writes it (keys, their order, escaping).
std::string confo_json(const confo_fields& f);

/// The app's query URL for a pair, each segment percent-encoded.
std::string query_url(const std::string& servername, int port, const std::string& prefix,
                      const std::string& device_name, const std::string& ssid);

/// `locomovctl confo`: posts confos to the confirmation port, prints replies.
std::unique_ptr<command> make_confo_command();

/// `locomovctl query`: asks the confirmation port over HTTPS, as the app does.
std::unique_ptr<command> make_query_command();

}  // namespace locomov::ctl
