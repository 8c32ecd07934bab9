"""HAProxy in front of bot replicas on loopback: the settings of ``deploy/haproxy.cfg``.

>>> print(haproxy_config(8000, [8001]).splitlines()[-1])
    server bot1 127.0.0.1:8001 check

Health checks on ``/readyz``; a POST that met a dead replica (refused connection, empty
answer) goes to another one, which is safe because storage dedups. A 503 (a refusal under
load, or an inbox that is down) goes back to Meta, which delivers again later. Change
``deploy/haproxy.cfg`` with it.
"""

from __future__ import annotations

from loadtests.processes import HOST

_HAPROXY_CFG = """
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 5s
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response
    option redispatch 1
frontend webhook
    bind {host}:{front_port}
    default_backend bots
backend bots
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}
"""


def haproxy_config(front_port: int, backend_ports: list[int]) -> str:
    """A config for HAProxy on loopback: ``front_port`` in front of the bot replicas."""
    servers = "\n".join(
        f"    server bot{n} {HOST}:{port} check" for n, port in enumerate(backend_ports, 1)
    )
    return _HAPROXY_CFG.format(host=HOST, front_port=front_port, servers=servers)
