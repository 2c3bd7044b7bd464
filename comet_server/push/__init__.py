"""Server push without HTTP: what a suspended response waits for (``waits``), the hub
of channels and waiters (``hub``), and the Redis broker between processes
(``redis_broker``)."""
