// The identity a worker process writes into `claimed_by`.
#pragma once

#include <string>

namespace imagen {

/// "<host>:<pid>:<6 random hex>": unique per process start, readable by an
/// operator who wants to know which machine holds a job.
std::string make_worker_id();

}  // namespace imagen
