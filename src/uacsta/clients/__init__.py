"""Client libraries for uacsta's own interfaces (CLI, tests, load generator)."""
