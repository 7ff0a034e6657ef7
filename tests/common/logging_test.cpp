// Component loggers and their levels, as start-up and SIGHUP set them.

#include "common/logging.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace locomov::logs {
namespace {

TEST(Logging, SetLevelAppliesToEveryComponent) {
  set_level(spdlog::level::debug);

  for (auto* logger : {&net(), &protocol(), &storage(), &actors(), &app()}) {
    EXPECT_TRUE(logger->should_log(spdlog::level::debug)) << logger->name();
  }

  set_level(spdlog::level::warn);

  for (auto* logger : {&net(), &protocol(), &storage(), &actors(), &app()}) {
    EXPECT_FALSE(logger->should_log(spdlog::level::info)) << logger->name();
    EXPECT_TRUE(logger->should_log(spdlog::level::warn)) << logger->name();
  }
}

TEST(Logging, ParseLevelRejectsAnUnknownName) {
  EXPECT_EQ(parse_level("debug"), spdlog::level::debug);
  EXPECT_EQ(parse_level("off"), spdlog::level::off);
  EXPECT_THROW(parse_level("verbose"), std::invalid_argument);
}

TEST(Logging, OneLineFitsLibpqsMessageIntoAQuotedField) {
  // What libpq says when the embedded cluster's socket is gone.
  const char* libpq =
      "connection to server on socket \"/var/lib/locomov/postgresql/socket/.s.PGSQL.5432\" "
      "failed: No such file or directory\n\tIs the server running locally and accepting "
      "connections on that socket?\n";

  EXPECT_EQ(one_line(libpq),
            "connection to server on socket '/var/lib/locomov/postgresql/socket/.s.PGSQL.5432' "
            "failed: No such file or directory Is the server running locally and accepting "
            "connections on that socket?");
}

}  // namespace
}  // namespace locomov::logs
