// Linked into every executable of a LOCOMOV_SANITIZE build, so that the
// tests, the daemons they start and a developer running a binary by hand
// all get the same sanitizer settings without exporting any variable. Any
// finding ends the process with a failure (-fno-sanitize-recover, ASan's
// default), and a daemon's exit status shows it to the e2e tests.

extern "C" {

// Where undefined behaviour happened, not only that it did.
const char* __ubsan_default_options() { return "print_stacktrace=1"; }

// libpqxx 6.4 does not free the error result libpq makes when a connection
// breaks mid-call (PQmakeEmptyPGresult, reached only from inside libpqxx);
// locomov never calls libpq for results itself. See docs/LIMITATIONS.md.
const char* __lsan_default_suppressions() { return "leak:PQmakeEmptyPGresult\n"; }

}
