"""Process hardening shared by every lfr process that holds faces in memory."""

from __future__ import annotations

import resource


def disable_core_dumps() -> None:
    """A crash must not write the process's memory to disk: it holds crops and embeddings of passers-by
    (a test dump held 541 of 2,000). Hard limit 0 too, so nothing in the process can raise it again.
    systemd units set LimitCORE=0 as well, for what happens before Python starts."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
