"""Outbound HTTP that cannot be turned against the machine it runs on (SSRF).

``http`` and ``notify`` steps and the remote AI providers connect through :func:`client`. Its
transport resolves each host itself, connects only to an address the policy allows, and checks
the connected socket's peer address: loopback, private, link-local (cloud metadata), multicast,
unspecified and other non-public addresses are refused, on the first request and on every
redirect (each is a new connection), and a name that resolves differently the second time (DNS
rebinding) gains nothing because the address checked is the address connected to.

``AWE_HTTP_ALLOW_PRIVATE=true`` lifts the rule; ``AWE_HTTP_ALLOWED_HOSTS`` lets chosen names,
addresses or networks through. A provider's own configured URL (``AWE_OLLAMA_URL``…) is the
operator's choice and is allowed for that provider. No proxy from the environment is used: the
address checked must be the one the request goes to. The SMTP server is the operator's too and
is not subject to this.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from awe.engine.errors import StepError

if TYPE_CHECKING:  # a step kind's module is loaded to check a file, without settings
    from awe.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The error category of a refused destination (never retried: it will not change by itself).
CATEGORY = "network_policy"


class OutboundRefused(StepError):
    """A request to an address the outbound policy does not allow."""

    def __init__(self, message: str) -> None:
        super().__init__(message, category=CATEGORY, retryable=False)


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one (None when it is). IPv6 forms that carry an IPv4
    address (mapped, 6to4, Teredo) are judged by the address they carry."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local:
            return "a site-local address"
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            inner = blocked_reason(embedded)
            return None if inner is None else f"{inner}, inside an IPv6 address"
    for test, reason in (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address (cloud metadata lives there)"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, test):
            return reason
    return None if address.is_global else "not a public address"


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach."""

    allow_private: bool = False
    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    #: (host, port) pairs trusted by configuration for one client (a provider's own URL).
    trusted: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        """The policy AWE_HTTP_ALLOW_PRIVATE and AWE_HTTP_ALLOWED_HOSTS describe."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in settings.http_allowed_hosts.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(settings.http_allow_private, frozenset(names), tuple(networks))

    def trusting(self, urls: Iterable[str | None]) -> OutboundPolicy:
        """This policy, also allowing the host and port of each of ``urls`` (configured by the
        operator), and no other port of those hosts."""
        pairs = set()
        for url in urls:
            if not url:
                continue
            parts = urlsplit(url)
            if parts.hostname:
                default = 443 if parts.scheme == "https" else 80
                pairs.add((parts.hostname.lower(), parts.port or default))
        return OutboundPolicy(
            self.allow_private, self.names, self.networks, self.trusted | frozenset(pairs)
        )

    def refusal(self, host: str, address: IPAddress, port: int = 0) -> str | None:
        """Why ``host`` at ``address`` (``port``) may not be reached (None when it may)."""
        reason = blocked_reason(address)
        name = host.lower().rstrip(".").strip("[]")
        if (
            reason is None
            or self.allow_private
            or name in self.names
            or (name, port) in self.trusted
            or any(address in network for network in self.networks)
        ):
            return None
        shown = host if host == str(address) else f"{host} ({address})"
        return (
            f"refused to connect to {shown}: {reason}. Requests to private and local addresses"
            f" are blocked; allow this one with AWE_HTTP_ALLOWED_HOSTS={host},"
            " or all of them with AWE_HTTP_ALLOW_PRIVATE=true"
        )


def _connect(
    policy: OutboundPolicy,
    inner: Any,
    host: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
    connect_error: type[Exception],
) -> Any:
    """Resolve ``host``, refuse what the policy forbids, connect to an allowed address, and
    check the connected socket's peer."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise connect_error(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    refusals = []
    for address in addresses:
        why = policy.refusal(host, address, port)
        if why is not None:
            refusals.append(why)
            continue
        stream = inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
        peer = ipaddress.ip_address(stream.get_extra_info("socket").getpeername()[0])
        why = policy.refusal(host, peer, port)
        if why is not None:  # connected somewhere else than what was checked
            stream.close()
            raise OutboundRefused(why)
        return stream
    raise OutboundRefused(refusals[0] if refusals else f"{host} resolved to no address")


@functools.cache
def _flavour(httpx_module: Any, httpcore_module: Any) -> type[Any]:
    """The guarded transport class for one httpx/httpcore pair (httpx, or the SDKs' httpx2)."""

    class GuardedBackend(httpcore_module.NetworkBackend):  # type: ignore[misc]
        def __init__(self, policy: OutboundPolicy) -> None:
            self.policy = policy
            self.inner = httpcore_module.SyncBackend()

        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> Any:
            return _connect(
                self.policy,
                self.inner,
                host,
                port,
                timeout,
                local_address,
                socket_options,
                httpcore_module.ConnectError,
            )

        def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Any = None
        ) -> Any:
            raise OutboundRefused(f"refused to connect to the unix socket {path}")

        def sleep(self, seconds: float) -> None:
            self.inner.sleep(seconds)

    class GuardedTransport(httpx_module.HTTPTransport):  # type: ignore[misc]
        """httpx's transport, its connection pool connecting through the guarded backend."""

        def __init__(self, policy: OutboundPolicy, **options: Any) -> None:
            super().__init__(trust_env=False, **options)
            ssl_context = self._pool._ssl_context  # type: ignore[has-type]
            self._pool = httpcore_module.ConnectionPool(
                ssl_context=ssl_context, network_backend=GuardedBackend(policy)
            )

    class ClosingClient(httpx_module.Client):  # type: ignore[misc]
        """A client that closes its connections when dropped (SDKs do not close one they
        were given, and an unclosed socket would linger until the process ends)."""

        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                self.close()

    GuardedTransport.client_class = ClosingClient
    return GuardedTransport


def client(
    settings: Settings, *, trusted: Iterable[str | None] = (), **options: Any
) -> httpx.Client:
    """An httpx client whose connections obey the outbound policy of ``settings``;
    ``trusted``: URLs the operator configured for this client (their hosts are allowed)."""
    policy = OutboundPolicy.from_settings(settings).trusting(trusted)
    transport = _flavour(httpx, httpcore)(policy)
    return transport.client_class(transport=transport, trust_env=False, **options)  # type: ignore[no-any-return]


def sdk_client(settings: Settings, *, trusted: Iterable[str | None] = (), **options: Any) -> Any:
    """The same, for the openai and anthropic SDKs, which use the httpx2 fork of httpx."""
    try:
        import httpcore2 as sdk_core
        import httpx2 as sdk_httpx
    except ImportError:  # an SDK on plain httpx
        return client(settings, trusted=trusted, **options)
    policy = OutboundPolicy.from_settings(settings).trusting(trusted)
    transport = _flavour(sdk_httpx, sdk_core)(policy)
    return transport.client_class(transport=transport, trust_env=False, **options)


def refused_cause(exc: BaseException) -> OutboundRefused | None:
    """The OutboundRefused behind an SDK's connection error (SDKs wrap what transports raise)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OutboundRefused):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None
