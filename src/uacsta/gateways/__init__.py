"""gateways layer."""
