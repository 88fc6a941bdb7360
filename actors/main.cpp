// Placeholder until the command line is wired; replaced by the real entry.
#include <cstdio>
int main() {
  std::fputs("imagen-worker: not wired yet\n", stderr);
  return 1;
}
