"""Build-cache keys for a request's targets, and restoring a hit into place without loading TensorFlow."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgebuild import partials
from edgebuild.plan import TargetPlan
from edgebuild.profiles import to_toml
from edgebuild.report import write_json
from edgebuild.stages.context import Progress

if TYPE_CHECKING:
    from edgebuild.cache import BuildCache
    from edgebuild.pipeline import BuildRequest


def cache_keys(
    request: BuildRequest, plans: list[TargetPlan], model_sha: str
) -> tuple[BuildCache | None, dict[str, str]]:
    """One key per target over model, profile, data, flags, stack versions and referenced files."""
    if not request.use_cache or request.bench_device is not None:  # device numbers are measured fresh each time
        return None, {}
    from edgebuild.cache import BuildCache, build_key, default_cache_dir, referenced_files, stack_fingerprint
    from edgebuild.hashing import hash_path

    cache = BuildCache(request.cache_dir or default_cache_dir())
    data = {
        "data": hash_path(request.data) if request.data else None,
        "val_data": hash_path(request.val_data) if request.val_data else None,
    }
    flags = {"random_calibration": request.random_calibration}
    versions = stack_fingerprint()
    keys = {
        plan.target: build_key(
            model_sha256=model_sha,
            profile_toml=to_toml(plan.profile),
            data_sha256=data,
            flags=flags,
            versions=versions,
            files=referenced_files(plan.profile),
        )
        for plan in plans
    }
    return cache, keys


def restore_cached(
    cache: BuildCache | None, key: str | None, target: str, out_root: Path, progress: Progress
) -> tuple[Path, dict[str, Any]] | None:
    """Restore a hit into `out_root/target` (atomically, like a build); returns its folder and report."""
    if cache is None or key is None:
        return None
    entry, note = cache.lookup(key)
    if note:
        progress.message(f"  {target:<10} {note}")
    if entry is None:
        return None
    started = time.perf_counter()
    out_root.mkdir(parents=True, exist_ok=True)
    work_dir = partials.new_partial_dir(out_root, target)
    try:
        cache.restore(entry, work_dir)
        report = json.loads((work_dir / "report.json").read_text())
        report["cache"] = {"hit": True, "key": key}
        write_json(work_dir / "report.json", report)
        final_dir = out_root / target
        partials.move_into_place(work_dir, final_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        partials.ACTIVE_PARTIALS.discard(work_dir)
    progress.stage_finished(target, "cached", time.perf_counter() - started, f"restored {key[:12]}")
    return final_dir, report
