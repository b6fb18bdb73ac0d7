"""Optuna storage from a URL: journal file (default, several processes on one machine), SQLite (one process),
or any SQLAlchemy URL (PostgreSQL for many machines)."""

from __future__ import annotations

from pathlib import Path

from tinynas.errors import ConfigError


def make_storage(url: str | None, run_dir: Path):
    """Optuna storage from a URL: ``journal:///abs/path.log`` (default: ``run_dir/study.journal``), ``sqlite:///``,
    or any SQLAlchemy URL (``postgresql://...``)."""
    if url is None or url == "":
        url = f"journal://{(run_dir / 'study.journal').resolve()}"
    if url.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal://"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as e:
            raise ConfigError(f"storage={url}: cannot write the journal file {path} ({e.strerror})") from None
        return JournalStorage(JournalFileBackend(str(path))), url
    if "://" not in url:
        raise ConfigError(f"storage={url!r} is not a storage URL; use journal:///abs/path.log, sqlite:///path.db "
                          f"or an SQLAlchemy URL such as postgresql://user@host/db")
    return url, url
