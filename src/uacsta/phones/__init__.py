"""phones layer."""
