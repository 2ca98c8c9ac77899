"""Checking an upload before it is stored: size, emptiness, real type (libmagic), junk.

A document is accepted when libmagic's MIME type is one we can read *and* agrees with the file
name's extension: a ``.pdf`` that is really text, or a ``.txt`` that is really an executable,
is refused, as are empty files, files over the size limit and binary data posing as text.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath

from awe.core.errors import DependencyError, ValidationFailed

#: Extension → the MIME types libmagic may report for it.
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
EXTENSIONS: dict[str, frozenset[str]] = {
    ".txt": TEXT_TYPES,
    ".text": TEXT_TYPES,
    ".log": TEXT_TYPES,
    ".md": TEXT_TYPES | {"text/x-script.python", "text/x-java", "text/x-c"},
    ".markdown": TEXT_TYPES,
    ".rst": TEXT_TYPES,
    ".csv": TEXT_TYPES | {"text/csv"},
    ".json": TEXT_TYPES | {"application/json"},
    ".yaml": TEXT_TYPES | {"application/x-yaml", "text/x-yaml"},
    ".yml": TEXT_TYPES | {"application/x-yaml", "text/x-yaml"},
    ".html": frozenset({"text/html", "text/xml"}) | TEXT_TYPES,
    ".htm": frozenset({"text/html", "text/xml"}) | TEXT_TYPES,
    ".pdf": frozenset({"application/pdf"}),
}
#: What each accepted document is read as.
KIND_OF = {".pdf": "pdf", ".html": "html", ".htm": "html"}


class DocumentRefused(ValidationFailed):
    """The document cannot go into the knowledge base."""


@dataclass(frozen=True)
class Checked:
    """An accepted document: its MIME type and how to read it (text, html or pdf)."""

    mime: str
    kind: str


def magic_mime(data: bytes) -> str:
    """libmagic's MIME type for ``data``."""
    try:
        import magic
    except ImportError as exc:  # python-magic is there but libmagic1 is not, or neither
        raise DependencyError(
            f"file type detection needs libmagic (Debian: apt install libmagic1): {exc}"
        ) from None
    return str(magic.from_buffer(data[:65536], mime=True))


def check(name: str, data: bytes, *, max_bytes: int) -> Checked:
    """Accept ``data`` named ``name`` or raise DocumentRefused saying why and what would do."""
    extension = PurePath(name).suffix.lower()
    if extension not in EXTENSIONS:
        raise DocumentRefused(
            f"{name}: {extension or 'no extension'} is not a document type awe reads"
            f" (accepted: {', '.join(sorted(EXTENSIONS))})"
        )
    if not data:
        raise DocumentRefused(f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise DocumentRefused(
            f"{name}: {len(data)} bytes is over the limit of {max_bytes} (AWE_KNOWLEDGE_MAX_BYTES)"
        )
    mime = magic_mime(data)
    if mime not in EXTENSIONS[extension]:
        raise DocumentRefused(
            f"{name}: the name says {extension} but the content is {mime};"
            " rename it to what it is, or convert it"
        )
    kind = KIND_OF.get(extension, "text")
    if kind != "pdf" and _looks_binary(data):
        raise DocumentRefused(f"{name}: binary data, not text")
    return Checked(mime=mime, kind=kind)


def files_under(paths: list[str], *, root: Path | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the files named and the files inside the folders named (hidden ones
    skipped), sorted within each folder; the name is the path as given.

    With ``root``, every path is resolved (symbolic links followed) and must lie inside it:
    relative paths are read from the root, and a link that leads out of it is refused.
    """
    base = root.expanduser().resolve() if root is not None else None
    found: list[tuple[str, Path]] = []
    for raw in paths:
        given = Path(raw).expanduser()
        path = _inside(base, given, raw) if base is not None else given
        if path.is_dir():
            for inner in sorted(path.rglob("*")):
                relative = inner.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or not inner.is_file():
                    continue
                real = _inside(base, inner, str(Path(raw) / relative)) if base else inner
                found.append((str(Path(raw) / relative), real))
        elif path.exists():  # a file, or something else that read_bounded refuses by itself
            found.append((raw, path))
        else:
            raise ValidationFailed(f"ingest: {raw}: no such file or folder")
    return found


def _inside(base: Path, path: Path, shown: str) -> Path:
    try:
        real = (path if path.is_absolute() else base / path).resolve()
    except (RuntimeError, OSError) as exc:  # a loop of symbolic links, say
        raise ValidationFailed(f"ingest: {shown}: cannot resolve it ({exc})") from None
    if not real.is_relative_to(base):
        raise ValidationFailed(
            f"ingest: {shown} is outside the folder ingest steps may read ({base},"
            " AWE_INGEST_ROOT); symbolic links are followed before this is checked"
        )
    return real


def read_bounded(name: str, path: Path, *, max_bytes: int) -> bytes:
    """A regular file's bytes, its size checked before any byte is read; DocumentRefused when it
    is not a regular file or is too large."""
    # O_NONBLOCK: opening a named pipe must not wait for a writer (regular files ignore it).
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise DocumentRefused(f"{name}: cannot open it ({exc.strerror or exc})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DocumentRefused(f"{name}: not a regular file")
        if info.st_size > max_bytes:
            raise DocumentRefused(
                f"{name}: {info.st_size} bytes is over the limit of {max_bytes}"
                " (AWE_KNOWLEDGE_MAX_BYTES)"
            )
        return handle.read(max_bytes + 1)


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control characters, in the first 8 KiB."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > len(head) * 0.05
