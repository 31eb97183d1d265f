"""How a Google Cloud client finds its API: Google's endpoint, another one, or a local stub.

An endpoint setting of the form ``http://host:port`` names a local emulator or test stub:
the client talks plaintext to it without credentials (the convention of the
``*_EMULATOR_HOST`` variables). Any other non-empty value is a TLS endpoint used with the
default credentials; empty means Google's.
"""

from __future__ import annotations

import importlib
from typing import Any

PLAINTEXT = "http://"


def is_local(endpoint: str) -> bool:
    return endpoint.startswith(PLAINTEXT)


def host_port(endpoint: str) -> str:
    """``host:port`` of an endpoint given with or without a scheme."""
    for scheme in (PLAINTEXT, "https://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :].rstrip("/")
    return endpoint.rstrip("/")


def gapic_kwargs(endpoint: str, transport_cls: type, default_endpoint: str = "") -> dict[str, Any]:
    """Keyword arguments for a GAPIC client: a plaintext gRPC channel for a local stub,
    ``client_options`` for another endpoint, nothing for Google's default."""
    if is_local(endpoint):
        import grpc

        channel = grpc.insecure_channel(host_port(endpoint))
        return {"transport": transport_cls(channel=channel)}
    chosen = endpoint or default_endpoint
    return {"client_options": {"api_endpoint": host_port(chosen)}} if chosen else {}


def gapic_client(
    package: str, service: str, name: str, endpoint: str, default_endpoint: str = ""
) -> Any:
    """``google.cloud.<package>``'s ``<name>Client`` (module ``services.<service>``) for
    ``endpoint``, through :func:`gapic_kwargs` with its ``<name>GrpcTransport``."""
    module = importlib.import_module(f"google.cloud.{package}.services.{service}")
    transports = importlib.import_module(f"{module.__name__}.transports")
    transport = getattr(transports, f"{name}GrpcTransport")
    return getattr(module, f"{name}Client")(**gapic_kwargs(endpoint, transport, default_endpoint))
