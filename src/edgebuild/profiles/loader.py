"""Find, merge and validate target profiles.

A profile is TOML. `extends` pulls in another profile (built-in name or a
path relative to the file); tables deep-merge, arrays replace, and `--set`
overrides apply last. Every leaf remembers where it came from, so a bad key
is reported against the file (or `--set`) that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
import tomllib
from pydantic import BaseModel, ValidationError

from edgebuild.errors import ProfileError
from edgebuild.profiles.schema import Profile

Origins = dict[str, str]


@dataclass(frozen=True)
class ProfileSource:
    """Where a profile's TOML lives: a built-in name or a user file."""

    label: str  # shown in messages
    text: str
    base_dir: Path | None  # for resolving relative `extends`


def builtin_names() -> list[str]:
    root = resources.files("edgebuild.targets")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _builtin_source(name: str) -> ProfileSource:
    resource = resources.files("edgebuild.targets").joinpath(f"{name}.toml")
    if not resource.is_file():
        raise ProfileError(
            f"Unknown target '{name}'. Built-in targets: {', '.join(builtin_names())}; "
            "or pass a profile file such as --target ./myboard.toml."
        )
    return ProfileSource(label=f"built-in target '{name}'", text=resource.read_text(), base_dir=None)


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref


def _source_for(ref: str, base_dir: Path | None) -> ProfileSource:
    if not _looks_like_path(ref):
        return _builtin_source(ref)
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ProfileError(f"Profile file {path} does not exist. Check the path given to --target or 'extends'.")
    return ProfileSource(label=str(path), text=path.read_text(), base_dir=path.parent)


def _parse(source: ProfileSource) -> dict[str, Any]:
    try:
        return tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source.label} is not valid TOML: {exc}. Fix the syntax at that line.") from None


def _deep_merge(
    base: dict[str, Any], override: dict[str, Any], origins: Origins, label: str, prefix: str = ""
) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value, origins, label, f"{path}.")
        else:
            merged[key] = value
            _record_origins(value, origins, label, path)
    return merged


def _record_origins(value: Any, origins: Origins, label: str, path: str) -> None:
    origins[path] = label
    if isinstance(value, dict):
        for key, sub in value.items():
            _record_origins(sub, origins, label, f"{path}.{key}")


def _load_raw(ref: str, base_dir: Path | None, seen: tuple[str, ...], origins: Origins) -> dict[str, Any]:
    source = _source_for(ref, base_dir)
    if source.label in seen:
        chain = " -> ".join((*seen, source.label))
        raise ProfileError(f"Profiles extend each other in a cycle: {chain}. Remove one 'extends'.")
    data = _parse(source)
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return _deep_merge({}, data, origins, source.label)
    if not isinstance(parent_ref, str):
        raise ProfileError(f"{source.label}: 'extends' must be a target name or a path string.")
    parent = _load_raw(parent_ref, source.base_dir, (*seen, source.label), origins)
    if "name" not in data:  # a child profile without a name is named after its file
        data["name"] = Path(source.label).stem if source.base_dir else parent.get("name", ref)
    return _deep_merge(parent, data, origins, source.label)


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """`quantization.io=int8` -> (["quantization", "io"], "int8"); values are TOML, else strings."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ProfileError(f"--set {assignment!r} is not of the form key.path=value (e.g. --set quantization.io=int8).")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def _apply_override(data: dict[str, Any], path: list[str], value: Any, origins: Origins, assignment: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ProfileError(f"--set {assignment}: '{part}' is a value, not a table.")
        node = child
    node[path[-1]] = value
    _record_origins(value, origins, f"--set {assignment}", ".".join(path))


def resolve(ref: str, overrides: list[str] | tuple[str, ...] = ()) -> Profile:
    """Load a profile by built-in name or path, apply `--set` overrides, validate it."""
    origins: Origins = {}
    data = _load_raw(ref, Path.cwd(), (), origins)
    for assignment in overrides:
        path, value = parse_override(assignment)
        _apply_override(data, path, value, origins, assignment)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_explain(exc, origins, ref)) from None


def _valid_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = Profile
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _explain(exc: ValidationError, origins: Origins, ref: str) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc) or "(profile)"
        where = origins.get(key) or _nearest_origin(key, origins) or ref
        if err["type"] == "extra_forbidden":
            valid = ", ".join(_valid_keys(loc))
            problems.append(f"{where}: unknown key '{key}'; valid keys there: {valid}")
        elif err["type"] == "literal_error":
            problems.append(
                f"{where}: '{key}' = {err['input']!r} is not allowed; choose one of {err['ctx']['expected']}"
            )
        elif err["type"] == "missing":
            problems.append(f"{where}: required key '{key}' is missing")
        else:
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            problems.append(f"{where}: '{key}'{shown}: {err['msg'].removeprefix('Value error, ')}")
    return "Invalid profile. " + "; ".join(problems) + ". Fix the key in that file or the --set option."


def _nearest_origin(key: str, origins: Origins) -> str | None:
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in origins:
            return origins[prefix]
        children = [v for k, v in origins.items() if k.startswith(prefix + ".")]
        if children:
            return children[-1]
    return None


def to_toml(profile: Profile) -> str:
    """The fully resolved profile as TOML (what `targets show` prints and builds write)."""
    return tomli_w.dumps(profile.model_dump(mode="json", exclude_none=True))
