// Filled by the actor wiring.
