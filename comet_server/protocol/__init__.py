"""HTTP/1.1 on the loop, knowing nothing of WSGI's application or of comet: strict
request framing (``http1``), one client connection (``connection``), accepting within
caps (``acceptor``), one response's framing and access log (``responder``), and the
WSGI environ built from a parsed request (``wsgi_environ``)."""
