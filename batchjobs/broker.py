"""The embedded broker: kombu's filesystem transport, made safe across processes.

kombu's own filesystem transport writes a message file in place, so a
consumer polling the folder can pick up a half-written file, fail to decode
it and stop consuming (the message is lost). Here a producer writes into a
``tmp`` folder and renames the file into the queue folder (atomic on POSIX),
and a consumer claims a file by renaming it into its own ``claimed`` folder
on the same filesystem, so exactly one consumer gets each message. A message's file
name starts with its priority, so that a consumer takes the highest first.

Registered with kombu as the ``embedded://`` transport.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

log = logging.getLogger(__name__)

SCHEME = "embedded"


#: The transport options that name folders; each is made when a channel opens.
FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder",
                  "tmp_folder")


class Channel(filesystem.Channel):
    """Filesystem channel with atomic publish and claim."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The folders are made by whoever uses the broker first, never by reading settings.
        for option in FOLDER_OPTIONS:
            if folder := self.transport_options.get(option):
                _ensure(str(folder))

    @cached_property
    def tmp_folder(self) -> str:
        return _ensure(self.transport_options.get("tmp_folder", "tmp"))

    @cached_property
    def claimed_folder(self) -> str:
        return _ensure(self.transport_options.get("processed_folder", "processed"))

    # kombu's own base classes disagree on this signature; the filesystem channel's wins.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Consumers take files in name order: the highest priority first, then the oldest.
        rank = self.max_priority - self._get_message_priority(payload)
        filename = f"p{rank}_{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        tmp_path = os.path.join(self.tmp_folder, filename)
        with open(tmp_path, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.rename(tmp_path, os.path.join(self.data_folder_out, filename))

    def _get(self, queue: str, timeout: Any = None) -> Any:
        suffix = f".{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if not filename.endswith(suffix) or filename.partition(".")[2] != suffix[1:]:
                continue
            claimed = os.path.join(self.claimed_folder, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
                return loads(bytes_to_str(payload))
            except ValueError:
                log.error("dropping unreadable message file %s", filename)
                continue
            finally:
                os.remove(claimed)
        raise Empty()


class Transport(filesystem.Transport):
    """``embedded://``: the filesystem transport with :class:`Channel`."""

    Channel = Channel
    driver_type = "embedded"
    driver_name = "embedded"


def _ensure(folder: str) -> str:
    os.makedirs(folder, exist_ok=True)
    return folder


def register() -> None:
    """Make ``embedded://`` URLs resolve to this transport (idempotent)."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
