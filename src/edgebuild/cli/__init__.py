"""The command line: one module per command, no heavy imports at module level."""
