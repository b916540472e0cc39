"""The servers the suite starts itself (PostgreSQL, pgbouncer, MariaDB): unix sockets, throwaway data
directories, stopped at the end; run as an unprivileged user when the suite runs as root."""
