#pragma once

// libpqxx 6.4 spells pqxx::connection as an alias of a template, so a plain
// `class connection;` would clash with <pqxx/connection>. Headers that only
// hold a connection by pointer include this instead of libpqxx's headers,
// which are slow to compile.
namespace pqxx {
class connect_direct;
template <typename CONNECTPOLICY>
class basic_connection_base;
using connection = basic_connection_base<connect_direct>;
}  // namespace pqxx
