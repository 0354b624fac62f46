"""Output folders built aside and swapped in: a build never leaves a half-written target folder behind.

Each target builds in `OUT/.<target>.partial-<pid>` and is renamed into place when complete (the previous
result survives until then as `.<target>.previous`). A killed build's folders are recognised by their dead
process id and cleaned by the next build; a forced exit of this process removes its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ACTIVE_PARTIALS: set[Path] = set()  # partial folders of this process, removed on a forced exit


def remove_active_partials() -> None:
    for path in list(ACTIVE_PARTIALS):
        shutil.rmtree(path, ignore_errors=True)


def new_partial_dir(out_root: Path, target: str) -> Path:
    """A hidden folder named after this process, so a later build can tell a stale one from a live one."""
    path = out_root / f".{target}.partial-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    ACTIVE_PARTIALS.add(path)
    return path


def clean_stale_partials(out_root: Path) -> list[Path]:
    """Remove partial folders left by builds that were killed (their process is gone); restore swapped-out results.

    Returns what was removed. A folder whose process is still alive (another build writing here) is left alone.
    """
    removed: list[Path] = []
    if not out_root.is_dir():
        return removed
    for path in out_root.iterdir():
        name = path.name
        if path.is_dir() and name.startswith(".") and ".partial" in name:
            pid_text = name.rpartition("-")[2] if "-" in name.rpartition(".partial")[2] else ""
            if path in ACTIVE_PARTIALS or (pid_text.isdigit() and process_alive(int(pid_text))):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif path.is_dir() and name.startswith(".") and name.endswith(".previous"):
            final = path.with_name(name[1 : -len(".previous")])
            if final.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.rename(final)  # killed mid-swap: the previous result comes back
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours but not active: left by an earlier build in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def move_into_place(work_dir: Path, final_dir: Path) -> None:
    """Swap the finished folder in; the old result survives until the new one is complete."""
    backup = final_dir.with_name(f".{final_dir.name}.previous")
    shutil.rmtree(backup, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(backup)
    work_dir.rename(final_dir)
    shutil.rmtree(backup, ignore_errors=True)
