"""Output files: where a job's artifacts live, and how their stored paths are read back.

Every artifact lives in the data folder (``JOBSTREAM_DATA_DIR``, made absolute once, when the
settings are read), in ``artifacts/<job id>/``. The store keeps its path relative to the data
folder, so the same job downloads from any instance or machine that mounts the folder, wherever
it is mounted and whatever the working directory. A path that leaves the data folder is refused
both when a handler declares it and when a download reads it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

ARTIFACTS = "artifacts"


def job_folder(data_dir: Path, job_id: str) -> Path:
    """The folder a job's handler writes its output files to."""
    return data_dir / ARTIFACTS / job_id


def stored_path(data_dir: Path, path: Path) -> str:
    """``path`` as the store keeps it: relative to the data folder, with ``/`` separators.

    Raises ``ValueError`` for a file outside the data folder."""
    root = data_dir.resolve()
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    try:
        relative = full.relative_to(root)
    except ValueError:
        raise ValueError(
            f"an artifact must be a file in the data folder {root}, not {full}; "
            "write it to ctx.artifact_path(name)"
        ) from None
    return relative.as_posix()


def resolve_stored(data_dir: Path, stored: str) -> Path | None:
    """The file a stored artifact path names, or ``None`` if the path leaves the data folder.

    Absolute paths (written by earlier versions) are accepted when they lie in the data folder."""
    root = data_dir.resolve()
    candidate = Path(stored) if Path(stored).is_absolute() else root / PurePosixPath(stored)
    full = candidate.resolve()
    if full != root and root not in full.parents:
        return None
    return full


__all__ = ["job_folder", "resolve_stored", "stored_path"]
