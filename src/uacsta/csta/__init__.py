"""csta layer."""
