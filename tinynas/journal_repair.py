"""A torn Optuna journal file (a power cut or a SIGKILL mid-append, or garbage appended to it) is repaired, not a
dead end: every complete record is kept, the torn bytes are set aside in ``<journal>.torn-<UTC time>``, and one
log line says so.

Optuna writes a journal record as one JSON object per line (``{"op_code": ...}``), appended whole under the
journal's lock (``<journal>.lock``, :class:`optuna.storages.journal.JournalFileSymlinkLock`) and fsynced. A line
that does not decode is therefore the remnant of a write that died, possibly with the next worker's complete
record glued to its end (that worker appended after the torn bytes); its readers stop at it with a decode error.

Why the repair is safe while other workers run. It rescans and rewrites the file only while holding that same
lock, so no append is in progress and none can start. Bytes before the first bad line are left untouched, and no
live reader holds a position past that line (Optuna caches a line's end offset only after the line decodes, and
raises at the next line after a bad one), so every reader's cached offsets stay valid. The new content replaces
the file atomically (``os.replace``); Optuna reopens the journal by path for every read and append.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("tinynas.storage")
RECORD_START = b'{"op_code":'


def _record(line: bytes) -> bytes | None:
    """``line`` as a complete journal record ending in a newline, or None."""
    try:
        doc = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError (garbage bytes)
        return None
    return line.rstrip(b"\r\n") + b"\n" if isinstance(doc, dict) and "op_code" in doc else None


def _first_bad_offset(data: bytes) -> int | None:
    offset = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n") or _record(line) is None:
            return offset
        offset += len(line)
    return None


def _split(tail: bytes) -> tuple[list[bytes], bytes]:
    """The complete records of ``tail`` (a bad line keeps the complete record glued to its end) and the rest."""
    kept, torn = [], bytearray()
    for line in tail.splitlines(keepends=True):
        record = _record(line)
        if record is None:
            start = line.rfind(RECORD_START)
            salvaged = _record(line[start:]) if start > 0 else None
            torn += line[:start] if salvaged else line
            record = salvaged
        if record is not None:
            kept.append(record)
    return kept, bytes(torn)


def repair_torn_journal(path: Path) -> Path | None:
    """Set the torn bytes of the journal at ``path`` aside, keeping its complete records; returns the side file,
    or None when the journal was whole."""
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    path = Path(path)
    if not path.is_file() or _first_bad_offset(path.read_bytes()) is None:  # the common case: no lock taken
        return None
    with get_lock_file(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()  # again, now that no worker is appending
        start = _first_bad_offset(data)
        if start is None:
            return None
        kept, torn = _split(data[start:])
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        side = path.with_name(f"{path.name}.torn-{stamp}")
        if torn:  # else only the last record's newline was missing
            side.write_bytes(torn)
        tmp = path.with_name(f"{path.name}.repair-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data[:start] + b"".join(kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    log.warning("journal %s was torn at byte %d: set %d bytes aside in %s and kept every complete record (%d)",
                path, start, len(torn), side if torn else "no file", data[:start].count(b"\n") + len(kept))
    return side if torn else None
