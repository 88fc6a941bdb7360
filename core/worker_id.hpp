// The identity a worker process writes into `claimed_by`.
#pragma once

#include <string>

namespace imagen {

/// "<host>:<pid>:<6 random hex>": unique per process start, readable by an
/// operator who wants to know which machine holds a job.
std::string make_worker_id();

/// `host` with every byte that is not printable ASCII as '_'. A host
/// name may hold any bytes; one that is not valid in the database's
/// encoding would make every statement that carries the worker id fail.
std::string printable_host(const std::string& host);

}  // namespace imagen
