"""Checking an upload before it is stored: size, emptiness, real type (libmagic), junk.

A document is accepted when libmagic's MIME type is one we can read *and* agrees with the file
name's extension: a ``.pdf`` that is really text, or a ``.txt`` that is really an executable,
is refused, as are empty files, files over the size limit and binary data posing as text.
"""

from __future__ import annotations

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


def files_under(paths: list[str]) -> list[Path]:
    """The files named, and the files inside the folders named (hidden ones skipped), sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ValidationFailed(f"ingest: {raw}: no such file or folder")
    return found


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control characters, in the first 8 KiB."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > len(head) * 0.05
