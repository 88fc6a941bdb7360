// Filled by the test support helpers.
