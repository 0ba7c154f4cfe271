"""Fetch files from mirror lists, verify MD5, write atomically, and fail with useful messages.

Three promises, because a dataset cache is shared by every later run:

- never a half file under the final name: bytes go to a temp file in the destination folder,
  which is renamed (atomic on POSIX) only after its checksum passed, and deleted otherwise;
- never a silent download where none is wanted: ``UNITLAB_OFFLINE=1`` (or ``offline=True``) turns
  a missing file into a ``FileNotFoundError`` that names the path and where to get it;
- never a vague failure: errors name the file, the URL, and the expected and actual checksums.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

OFFLINE_ENV = "UNITLAB_OFFLINE"
USER_AGENT = "unitlab (+https://github.com/unitlab)"  # some mirrors refuse urllib's default agent

Verifier = Callable[[Path], None]
"""Checks a candidate file and raises ``ChecksumError`` (or ``ValueError``) to reject it."""

log = logging.getLogger(__name__)


class ChecksumError(ValueError):
    """A file's content is not one of the accepted versions."""

    def __init__(
        self,
        path: Path | str,
        expected: Collection[str],
        actual: str,
        source: str | None = None,
        note: str = "",
    ) -> None:
        self.path, self.expected, self.actual, self.source = Path(path), expected, actual, source
        origin = f" (downloaded from {source})" if source else ""
        message = (
            f"checksum mismatch for {path}{origin}: got {actual}, "
            f"expected MD5 one of {', '.join(sorted(expected))}"
        )
        super().__init__(message + (f"; {note}" if note else ""))


class DownloadError(OSError):
    """No mirror delivered the file (network errors, HTTP errors, corrupt downloads)."""


def is_offline() -> bool:
    """True when ``UNITLAB_OFFLINE`` is set to anything but ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def md5_bytes(data: bytes) -> str:
    # usedforsecurity=False: MD5 is an integrity check here, and FIPS builds refuse it otherwise.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, read in chunks so large files need no large buffers."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_file_error(path: Path, urls: Sequence[str], why: str) -> FileNotFoundError:
    """The error for a file that is absent and may not be downloaded, with the way to get it."""
    where = urls[0] + (f" (mirrors: {', '.join(urls[1:])})" if len(urls) > 1 else "")
    return FileNotFoundError(
        f"{path} does not exist and {why}. Download it from {where} and save it there, "
        "or set UNITLAB_DATA to a folder that holds it."
    )


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temp path next to ``dest``; rename it onto ``dest`` only if the block succeeds.

    The temp file lives in the same folder so the rename stays on one filesystem (atomic); on any
    exception it is deleted, so readers see either the old state or the complete new file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a data cache should be readable like any file
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def check_md5(path: Path, accepted: Collection[str]) -> None:
    """Raise ``ChecksumError`` unless the file's MD5 (read in chunks) is one of ``accepted``."""
    actual = md5_file(path)
    if actual not in accepted:
        raise ChecksumError(path, accepted, f"file MD5 {actual}")


def _md5_verifier(accepted: Collection[str]) -> Verifier:
    return functools.partial(check_md5, accepted=accepted)


def _download(url: str, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)


def fetch(
    urls: Sequence[str],
    dest: Path,
    checksums: Collection[str] | Verifier,
    *,
    offline: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Make sure ``dest`` exists: download it from the first mirror in ``urls`` that works.

    ``checksums`` is either the set of accepted MD5 hex digests of the file, or a function that
    checks a candidate file and raises ``ChecksumError`` / ``ValueError`` to reject it (for files
    known by the MD5 of their decompressed payload). A mirror whose file is rejected counts as a
    failed mirror; the next one is tried.

    An existing ``dest`` is returned as is, without re-hashing: the loaders verify the bytes when
    they read them anyway, so hashing here too would only read every file twice.

    ``offline=None`` follows ``UNITLAB_OFFLINE``; ``True`` forbids downloading (a missing file
    raises ``FileNotFoundError`` naming the path and URL); ``False`` allows it whatever the
    environment says. ``file://`` URLs work like any other (tests use them).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    if not urls:
        raise ValueError(f"no URL to fetch {dest} from")
    if offline is None and is_offline():
        raise missing_file_error(dest, urls, f"downloads are disabled ({OFFLINE_ENV} is set)")
    if offline:
        raise missing_file_error(
            dest, urls, "downloads are disabled (download=False / offline=True)"
        )

    verify = checksums if callable(checksums) else _md5_verifier(checksums)
    failures: list[str] = []
    mismatch: ChecksumError | None = None
    for url in urls:
        log.info("downloading %s -> %s", url, dest)
        try:
            with atomic_path(dest) as tmp:
                _download(url, tmp, timeout)
                verify(tmp)
        except ChecksumError as err:
            if mismatch is not None:
                failures.append(str(mismatch))
            mismatch = ChecksumError(dest, err.expected, err.actual, source=url)
        except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {err}")
        else:
            return dest
    others = "; ".join(failures)
    if mismatch is not None:  # the most telling failure: a mirror served other bytes
        raise ChecksumError(
            dest, mismatch.expected, mismatch.actual, mismatch.source, note=others
        ) from None
    raise DownloadError(f"could not download {dest}: {others}")
