"""Server-side limits of the relay (part of ``ServerConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RelayLimits"]


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Limits of the relay service. Environment names are for the CLI to read.

    - ``max_file_size`` (``WIRELAB_RELAY_MAX_FILE_SIZE``, bytes): larger uploads get 413.
    - ``default_ttl`` (``WIRELAB_RELAY_DEFAULT_TTL``, seconds): expiry of a file when the
      sender gives no ``ttl``.
    - ``max_ttl`` (``WIRELAB_RELAY_MAX_TTL``, seconds): the largest ``ttl`` a sender may ask.
    - ``max_lease`` (``WIRELAB_RELAY_MAX_LEASE``, seconds): the largest ``lease``.
    - ``default_lease`` (``WIRELAB_RELAY_DEFAULT_LEASE``, seconds): ``lease`` when omitted.
    - ``max_wait`` (``WIRELAB_RELAY_MAX_WAIT``, seconds): the largest long-poll ``wait``.
    - ``sweep_interval`` (``WIRELAB_RELAY_SWEEP_INTERVAL``, seconds): how often expired
      files and abandoned partial uploads are removed.
    - ``upload_expiry`` (``WIRELAB_RELAY_UPLOAD_EXPIRY``, seconds): partial uploads with no
      progress for this long are removed by the sweeper.
    - ``quota_bytes`` (``WIRELAB_RELAY_QUOTA_BYTES``, bytes): default quota of an inbox
      (its files plus the uploads in progress addressed to it); over it: 507.
    - ``quota_files`` (``WIRELAB_RELAY_QUOTA_FILES``): default number of files of an inbox
      (same counting); over it: 429. A user's own quotas (``wirelab users set-quota``)
      replace these defaults.
    - ``reservation_ttl`` (``WIRELAB_RELAY_RESERVATION_TTL``, seconds): how long a
      created upload (tus or batch) holds its room in the recipient's quota while no
      bytes arrive; after that the room is free for others and the upload's next
      ``PATCH`` needs it again (507/429 if it is gone). Bytes arriving renew it.
    - ``sender_pending_bytes`` (``WIRELAB_RELAY_SENDER_PENDING_BYTES``, bytes) and
      ``sender_pending_uploads`` (``WIRELAB_RELAY_SENDER_PENDING_UPLOADS``): the most
      that one sender's unfinished uploads (to everyone) may announce, and their number;
      over either: 429. They bound what a sender can hold without sending.
    - ``disk_reserve`` (``WIRELAB_RELAY_DISK_RESERVE``, bytes): disk space uploads may
      never use, kept in a file that acknowledging and deleting release when the disk is
      full anyway (they must record the delete before they free the bytes).
    - ``lock_ttl`` (``WIRELAB_RELAY_LOCK_TTL``, seconds): how long the lease of an upload
      being written (and the sweeper's leadership) outlives a process that died holding
      it; held leases are renewed every third of it. A request that finds an upload
      busy waits up to this long (plus a second) before it is answered 423.
    - ``inline_max`` (``WIRELAB_RELAY_INLINE_MAX``, bytes): a direct send with a
      ``Content-Length`` of at most this many bytes is stored inline, in the database
      with its row (one commit, one sync: see ``docs/design.md``); 0 stores every file
      as a blob.
    """

    max_file_size: int = 10 * 1024**3
    default_ttl: float = 7 * 24 * 3600.0
    max_ttl: float = 30 * 24 * 3600.0
    max_lease: float = 3600.0
    default_lease: float = 300.0
    max_wait: float = 60.0
    sweep_interval: float = 60.0
    upload_expiry: float = 24 * 3600.0
    quota_bytes: int = 50 * 1024**3
    quota_files: int = 10_000
    reservation_ttl: float = 300.0
    sender_pending_bytes: int = 20 * 1024**3
    sender_pending_uploads: int = 100
    disk_reserve: int = 4 * 1024**2
    lock_ttl: float = 15.0
    inline_max: int = 64 * 1024
