"""Where a run directory lives: a local path or a cloud URI (``s3://``, ``gs://`` through
pyarrow's filesystems, which come with ``ray[tune]``), and the checks on it that happen
before anything starts (writable, enough free space)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from raysearch.rundir.experiment import Experiment, experiment_from_dict
from trainables.registry import ConfigError

EXPERIMENT_FILE = "experiment.yaml"


class StorageError(RuntimeError):
    """Writing or reading the run directory failed (a full disk, a lost mount): one line that
    names the path, what failed and what to do; finished work stays where it is."""

    @classmethod
    def of(cls, path: str, err: OSError, doing: str) -> StorageError:
        import errno

        what = err.strerror or type(err).__name__
        advice = "free space, then run the same command again (a search: --resume RUN_DIR)" \
            if err.errno in (errno.ENOSPC, errno.EDQUOT) else "check the storage, then run the same command again"
        return cls(f"{doing} {path} failed: {what}; {advice}")


def is_uri(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


def check_storage(storage: str) -> str:
    """The storage path, made and checked writable (a URI is taken as it is)."""
    if is_uri(storage):
        return storage.rstrip("/")
    path = os.path.abspath(os.path.expanduser(storage))
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".raysearch-write-test-"):
            pass
    except OSError as err:
        raise ConfigError("storage", storage, f"is not a writable directory ({err.strerror or err})") from None
    return path


def free_bytes(path: str) -> int | None:
    """Free bytes on the filesystem of ``path`` (None when it cannot be told)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def write_text(path: str, text: str) -> None:
    if is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_output_stream(fs_path) as f:
            f.write(text.encode())
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def read_experiment_file(run_dir: str) -> Experiment:
    """The experiment a run directory was started with (its ``experiment.yaml``)."""
    path = join(run_dir, EXPERIMENT_FILE)
    try:
        if is_uri(run_dir):
            import pyarrow.fs

            fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
            with fs.open_input_stream(fs_path) as f:
                text = f.read().decode()
        else:
            text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
    except (OSError, FileNotFoundError):
        raise ConfigError("resume", run_dir, f"is not a raysearch run directory (no {EXPERIMENT_FILE})") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ConfigError("resume", run_dir, f"its {EXPERIMENT_FILE} is not readable YAML") from None
    if not isinstance(data, dict):
        raise ConfigError("resume", run_dir, f"its {EXPERIMENT_FILE} is not a mapping")
    data.pop("raysearch_version", None)
    return experiment_from_dict(data, default_name=Path(run_dir.rstrip("/")).name)


__all__ = ["EXPERIMENT_FILE", "StorageError", "check_storage", "free_bytes", "is_uri", "join", "read_experiment_file", "write_text"]
