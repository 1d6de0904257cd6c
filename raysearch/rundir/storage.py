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


RESERVE_FILE = ".raysearch-reserve"


def reserve_bytes(trials: int) -> int:
    """Room for the driver's last writes after a full disk: Tune's experiment state (~14 KiB a
    trial on the demo), the searcher's state, the Optuna study, TensorBoard and the summary."""
    return 2**20 + 64 * 2**10 * max(trials, 1)


def hold_reserve(run_dir: str, size: int) -> str | None:
    """Set ``size`` bytes of the run directory's filesystem aside (a file of real bytes, not a
    sparse one), to be given back by :func:`release_reserve` the moment the storage fills up:
    the driver then still has room to write Tune's experiment state, the Optuna study and the
    summary completely, so a full disk never leaves a half-written run state that ``--resume``
    cannot read. None when the run directory is remote or the space is not there."""
    if is_uri(run_dir):
        return None
    path = str(Path(run_dir, RESERVE_FILE))
    block = b"\xff" * 2**16
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(max(size // len(block), 1)):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        release_reserve(path)
        return None
    return path


def release_reserve(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def write_text(path: str, text: str) -> None:
    if is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_output_stream(fs_path) as f:
            f.write(text.encode())
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as err:
        raise StorageError.of(path, err, "writing") from None


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


__all__ = ["EXPERIMENT_FILE", "RESERVE_FILE", "StorageError", "check_storage", "free_bytes", "hold_reserve", "is_uri", "join",
           "read_experiment_file", "release_reserve", "reserve_bytes",
           "write_text"]
