"""Target profiles: typed schema, loader with `extends` and `--set`, built-in lookup."""

from edgebuild.profiles.loader import builtin_names, resolve, to_toml
from edgebuild.profiles.schema import Profile

__all__ = ["Profile", "builtin_names", "resolve", "to_toml"]
