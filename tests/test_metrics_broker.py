"""Readiness follows the broker: a server whose Redis subscription is lost is not
ready until it is back.  Redis itself stays up (other tests share it): the server
reaches it through a proxy this test cuts."""

from __future__ import annotations

import requests

from tests.helpers.proc import SERVER_ENV, broker_env, launch, runcomet_argv, wait_until
from tests.helpers.tcp_proxy import TcpProxy
from tests.multiprocess.helpers import REDIS_URL, redis_alive


def ready(server) -> tuple[int, dict]:
    response = requests.get(server.url("/_comet/ready"), timeout=10)
    return response.status_code, response.json()


def test_ready_flips_when_the_broker_goes_away(tmp_path) -> None:
    assert redis_alive(), "Redis is not reachable; start it with `make services`"
    host_port = REDIS_URL.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    with TcpProxy((host, int(port))) as proxy:
        env = {**SERVER_ENV, **broker_env(f"redis://127.0.0.1:{proxy.port}/0")}
        server = launch(runcomet_argv(), tmp_path, "broker", env=env)
        try:
            wait_until(lambda: ready(server)[0] == 200, 10, "ready once subscribed")
            proxy.cut()
            status, body = wait_until(lambda: (r := ready(server))[0] == 503 and r, 10,
                                      "not ready without the broker")
            assert body == {"ready": False, "reasons": ["broker not connected"]}
            live = requests.get(server.url("/_comet/live"), timeout=10)
            assert live.status_code == 200
            metrics = requests.get(server.url("/metrics"), timeout=10).text
            assert f'comet_broker_connected{{worker="{server.pid}"}} 0.0' in metrics
            proxy.restore()
            wait_until(lambda: ready(server)[0] == 200, 15, "ready again after reconnecting")
            assert server.stderr().count("Redis subscription lost") == 1  # once per change
        finally:
            server.terminate()
