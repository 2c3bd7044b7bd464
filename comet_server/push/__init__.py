"""Server push without HTTP: the ``events`` the hub carries, what a suspended response
waits for (``waits``), the ``hub`` of channels, waiters and followers (its ``matcher``,
``slicer`` and ``signals`` windows, the ``blocking`` fallback), the process's hub
(``default_hub``), and the ``broker`` protocol with its Redis implementation
(``redis_broker``)."""
