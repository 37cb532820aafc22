"""Resident memory of a process, with the JACK server's shared memory apart (every JACK client maps it, and it
is the server's, not the client's): for benchmarks and the soak."""

from __future__ import annotations


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident MB of `pid` in all, and of that the JACK server's shared memory."""
    total = jack = 0
    mapping = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if fields and not fields[0].endswith(":"):  # a mapping's header: address range, ..., path
                mapping = fields[5] if len(fields) > 5 else ""
            elif fields and fields[0] == "Rss:":
                total += int(fields[1])
                if mapping.startswith("/dev/shm/jack"):
                    jack += int(fields[1])
    return total / 1024, jack / 1024


def rss_own_mb(pid: int) -> float:
    """Resident MB of `pid` without the JACK server's shared memory."""
    total, jack = rss_mb(pid)
    return total - jack
