// The runner of the deterministic actor tests: CAF's unit test framework
// provides main(); each *_test.cpp of this folder is one suite.
#define CAF_SUITE actor_tests
#include <caf/test/unit_test_impl.hpp>
