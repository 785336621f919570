"""Cross-cutting gRPC concerns in one place: bearer-token authentication and domain-error mapping.

The interceptor wraps each lfr handler's behaviour (unary and streaming alike), so servicers read the
caller from `current_principal()` and simply raise lfr.domain.errors; nothing else in the adapter maps
errors to status codes. Health and reflection are left untouched (they carry no lfr data).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from lfr.domain.errors import (
    Conflict,
    InvalidInput,
    LfrError,
    NotFound,
    PermissionDenied,
    StaleUpdate,
    StoreUnavailable,
    Throttled,
    Unauthenticated,
)
from lfr.domain.principal import Principal, PrincipalKind

logger = logging.getLogger(__name__)

LFR_PREFIX = "/lfr.v1."
CAMERA_PREFIX = "/lfr.v1.CameraIngest/"

_principal: ContextVar[Principal | None] = ContextVar("lfr_principal", default=None)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:  # a servicer was reached without the interceptor: refuse rather than guess
        raise Unauthenticated("no authenticated caller")
    return principal


def status_for(exc: LfrError) -> grpc.StatusCode:
    # Order matters: StaleUpdate is a Conflict but means "retry after reloading", not "never".
    if isinstance(exc, StaleUpdate):
        return grpc.StatusCode.ABORTED
    for kind, code in (
        (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound, grpc.StatusCode.NOT_FOUND),
        (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
        (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (Throttled, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    ):
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class TokenCache:
    """Remembers recent token lookups briefly, so a busy camera stream or tablet does not hit the store
    on every call; a revoked token stops working within `ttl_seconds`."""

    def __init__(
        self,
        authenticate: Callable[[str], Principal],
        ttl_seconds: float = 5.0,
        max_entries: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticate = authenticate
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[str, tuple[Principal, float]] = {}

    async def principal(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token: send metadata 'authorization: Bearer <token>'")
        key = hashlib.sha256(token.encode()).hexdigest()  # never keep raw tokens around, even in memory
        now = self._monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await asyncio.to_thread(self._authenticate, token)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (principal, now + self._ttl)
        return principal


def bearer_token(context: aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return ""


async def _abort(context: aio.ServicerContext[Any, Any], method: str, exc: Exception) -> None:
    if isinstance(exc, DecodeError):
        # A message that is not valid protobuf for this method: the caller's fault, not the server's.
        logger.info("%s -> INVALID_ARGUMENT (undecodable message)", method)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable message: {exc}")
    if isinstance(exc, LfrError):
        code = status_for(exc)
        # Type and code only: messages are for the caller, and logs must never carry request content.
        logger.info("%s -> %s (%s)", method, code.name, type(exc).__name__)
        await context.abort(code, str(exc) or type(exc).__name__)
    logger.exception("%s failed unexpectedly (%s)", method, type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the matcher's log")


class AuthAndErrorsInterceptor(aio.ServerInterceptor):
    def __init__(self, tokens: TokenCache) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(LFR_PREFIX):
            return handler
        kind = PrincipalKind.CAMERA if method.startswith(CAMERA_PREFIX) else PrincipalKind.USER
        return _wrap(handler, method, lambda ctx: self._principal(ctx, kind))

    async def _principal(self, context: aio.ServicerContext[Any, Any], kind: PrincipalKind) -> Principal:
        principal = await self._tokens.principal(bearer_token(context))
        if principal.kind is not kind:
            raise PermissionDenied(f"{principal.name} is a {principal.kind} account; this needs a {kind}")
        return principal


Authenticate = Callable[[aio.ServicerContext[Any, Any]], Awaitable[Principal]]


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, authenticate: Authenticate
) -> grpc.RpcMethodHandler[Any, Any]:
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, method, authenticate), **serializers
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, method, authenticate), **serializers
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _unary(handler.stream_unary, method, authenticate), **serializers
        )
    return grpc.unary_unary_rpc_method_handler(
        _unary(handler.unary_unary, method, authenticate), **serializers
    )


def _unary(behaviour: Any, method: str, authenticate: Authenticate) -> Any:
    async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            token = _principal.set(await authenticate(context))
            try:
                return await behaviour(request, context)
            finally:
                _principal.reset(token)
        except (aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)

    return wrapped


def _streaming(behaviour: Any, method: str, authenticate: Authenticate) -> Any:
    async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            # Set for this RPC's task; tasks the servicer spawns copy it.
            _principal.set(await authenticate(context))
            async for response in behaviour(request, context):
                yield response
        except (aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)

    return wrapped
