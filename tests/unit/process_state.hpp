// What /proc says about a process, for tests that prove a child is gone.
#pragma once

#include <sys/types.h>

#include <fstream>
#include <iterator>
#include <string>

namespace imagen::test {

/// True once `pid` has exited: gone from /proc, or a zombie waiting for a
/// parent (in a container, pid 1 may never reap it).
inline bool is_dead(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in)
    return true;
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // The state follows the command name, which is in parentheses and may
  // itself contain spaces or parentheses.
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size())
    return true;
  char state = stat[close + 2];
  return state == 'Z' || state == 'X';
}

}  // namespace imagen::test
