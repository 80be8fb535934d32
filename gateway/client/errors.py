"""The SDK's own errors: misuse of the client itself, apart from the gateway's error tree.

    ClientError                      base of the SDK's own errors
    ├── InvalidArgument (ValueError) an argument or option the client cannot use
    └── ClientClosed (RuntimeError)  the client is not open (use `with`/`async with`)

What the gateway or the pipeline says about an image (NoFaceFound, UndecodableImage,
PayloadTooLarge, UpstreamUnavailable, ...) stays gateway.errors' tree, for the direct and
the REST client alike; GatewayError (client/rest.py) carries an answer outside it.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of the errors the SDK raises about its own use."""


class InvalidArgument(ClientError, ValueError):
    """An argument or option the client cannot use; the message says what it expects."""


class ClientClosed(ClientError, RuntimeError):
    """The client is closed, or was never opened."""
