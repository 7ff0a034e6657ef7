#pragma once

#include <memory>

#include "apps/locomovctl/command.hpp"

namespace locomov::ctl {

/// `locomovctl cert`: connects to a TLS port as a device would and shows the
/// certificate it serves and the chain sent with it: subjects, issuers,
/// serials, validity, SHA-256 fingerprints and the leaf's names. With
/// `--warn-days N` it exits 1 when the leaf expires within N days.
std::unique_ptr<command> make_cert_command();

}  // namespace locomov::ctl
