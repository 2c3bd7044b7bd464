"""Serving a WSGI application: the configuration (``config``, ``options``), one
request's driving (``exchange``), the server's wiring and drain (``server``), and the
processes: one, or a supervised pre-fork (``runner``, ``prefork``, ``heartbeat``)."""
