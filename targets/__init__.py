"""Built-in target profiles (TOML data only; this file just makes the folder a package resource)."""
