"""`dutydesk logs tail`: follow log files across rotation and ship new lines in batches to
the desk's `POST /api/v1/logs`, resuming where the desk last acknowledged.

The state file keeps, per followed path, the file's identity (device and inode) and the offset
up to which the desk has accepted its lines; it is written after each acknowledged batch, so a
restart sends nothing twice (only a batch whose answer was lost can be sent again). A renamed
file (`app.log` → `app.log.1`) is found again by its inode in the same folder and read to its
end before the new file is read from its start; a file cut short (copytruncate) starts over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

BATCH_BYTES = 512 * 1024


class ShipError(RuntimeError):
    """The desk refused a batch or could not be reached; the message says which."""


@dataclass
class Position:
    """Where one followed path stands: its file's identity and the acknowledged offset."""

    dev: int
    inode: int
    offset: int


def load_state(path: Path) -> dict[str, Position]:
    """The saved positions (none when the file does not exist yet)."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {name: Position(**value) for name, value in raw.items()}


def save_state(path: Path, state: dict[str, Position]) -> None:
    """Write the positions atomically (a crash leaves the old or the new file, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps({k: vars(v) for k, v in state.items()}, indent=1))
    os.replace(temporary, path)


def _find_by_inode(folder: Path, dev: int, inode: int) -> Path | None:
    for candidate in folder.iterdir():
        try:
            st = candidate.stat()
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == dev and candidate.is_file():
            return candidate
    return None


@dataclass
class Shipper:
    """Ships the new lines of some files from one source to the desk."""

    client: httpx.Client
    source: str
    token: str
    state_path: Path
    fmt: str = "auto"
    shipped_lines: int = 0

    def _post(self, body: bytes) -> None:
        response = self.client.post(
            "/api/v1/logs",
            params={"source": self.source, "format": self.fmt},
            content=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "text/plain"},
        )
        if response.status_code != 200:
            raise ShipError(f"the desk answered {response.status_code}: {response.text[:500]}")
        self.shipped_lines += body.count(b"\n")

    def _ship_from(
        self, file: Path, position: Position, state: dict[str, Position], key: str, *, to_end: bool
    ) -> None:
        """Send the file's bytes after the position in batches of whole lines, saving the
        position after each acknowledged batch."""
        with file.open("rb") as handle:
            handle.seek(position.offset)
            while True:
                chunk = handle.read(BATCH_BYTES)
                if not chunk:
                    return
                cut = chunk.rfind(b"\n") + 1
                if cut == 0 and len(chunk) == BATCH_BYTES:
                    cut = len(chunk)  # one line longer than a batch: send it as it is
                if cut == 0 and not to_end:
                    return  # a line still being written
                body = chunk[:cut] if cut else chunk
                self._post(body)
                position.offset += len(body)
                state[key] = position
                save_state(self.state_path, state)
                handle.seek(position.offset)

    def ship_once(self, paths: list[Path]) -> int:
        """One pass over the paths; returns the lines shipped."""
        before = self.shipped_lines
        state = load_state(self.state_path)
        for path in paths:
            key = str(path.resolve())
            saved = state.get(key)
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if saved is not None and (
                st is None or (st.st_dev, st.st_ino) != (saved.dev, saved.inode)
            ):
                rotated = _find_by_inode(path.parent, saved.dev, saved.inode)
                if rotated is not None:
                    self._ship_from(rotated, saved, state, key, to_end=True)
                saved = None
            if st is None:
                continue
            if saved is None or st.st_size < saved.offset:
                saved = Position(st.st_dev, st.st_ino, 0)
                state[key] = saved
                save_state(self.state_path, state)
            self._ship_from(path, saved, state, key, to_end=False)
        return self.shipped_lines - before
