"""One-command benchmarks that print ratios against a reference run beside them (see README.md)."""
