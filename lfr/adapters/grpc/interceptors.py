"""Cross-cutting gRPC concerns in one place: bearer-token authentication and domain-error mapping.

Bearer-token guessing is throttled per client address (exponential back-off after repeated unknown
tokens), and when an AccessMonitor is given every call is checked against it, and every open stream ends
(UNAUTHENTICATED) within one poll of its account being disabled, removed or re-roled, or its token expired.

The interceptor wraps each lfr handler's behaviour (unary and streaming alike), so servicers read the
caller from `current_principal()` and simply raise lfr.domain.errors; nothing else in the adapter maps
errors to status codes. Health and reflection are left untouched (they carry no lfr data).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
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
from lfr.domain.limits import MAX_ID, MAX_SEQUENCE, MAX_TEXT, MAX_VERSION, require_at_most, require_length
from lfr.domain.principal import Principal, PrincipalKind
from lfr.services.access import AccessMonitor
from lfr.services.backoff import Backoff

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
        return await self.fresh(token)

    async def fresh(self, token: str) -> Principal:
        """Asks the store, whatever is cached, and caches the answer."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._monotonic()
        self._entries.pop(key, None)
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


_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)


def check_limits(message: Message) -> None:
    """Refuses (InvalidInput) any top-level text field longer than the limits in lfr.domain.limits (ids and
    names MAX_ID, other text MAX_TEXT) and any integer the stores cannot hold, naming the field. The
    services check each field's own, tighter limit; this catches every field of every control request.
    Whole documents (fields named *_json, e.g. an evaluation report) are bounded by the message size and
    parsed and checked by the service that takes them."""
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING and not field.name.endswith("_json"):
            limit = MAX_ID if field.name.endswith(("_id", "_ids")) else MAX_TEXT
            for text in values:
                require_length(field.name, text, limit)
        elif field.type in _INTEGER_TYPES:
            limit = MAX_VERSION if field.name.endswith("version") else MAX_SEQUENCE
            for number in values:
                require_at_most(field.name, number, limit)


def peer_address(context: aio.ServicerContext[Any, Any], proxies: ProxyList = ()) -> str:
    """The client's address without its port: 'ipv4:127.0.0.1:5000' -> '127.0.0.1'. Behind a load
    balancer listed in `proxies`, the last address it appended to the `x-forwarded-for` metadata."""
    peer = context.peer() or "unknown"
    address, _, port = peer.rpartition(":")
    address = address if address and port.isdigit() else peer
    address = address.split(":", 1)[1] if address.startswith(("ipv4:", "ipv6:")) else address
    address = address.strip("[]")
    if proxies and _is_in(address, proxies):
        for key, value in context.invocation_metadata() or ():
            if key == "x-forwarded-for":
                text = value.decode() if isinstance(value, bytes) else value
                forwarded = text.split(",")[-1].strip()
                if forwarded:
                    return forwarded
    return address


ProxyList = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def proxy_list(text: str) -> ProxyList:
    """Parses 'addr, net/len, ...' (raises ValueError naming a bad entry)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _is_in(address: str, proxies: ProxyList) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthAndErrorsInterceptor(aio.ServerInterceptor):
    def __init__(
        self,
        tokens: TokenCache,
        access: AccessMonitor | None = None,
        guesses: Backoff | None = None,
        proxies: ProxyList = (),
    ) -> None:
        self._tokens = tokens
        self._access = access
        self._guesses = guesses
        self._proxies = proxies

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
        return _wrap(handler, method, lambda ctx: self._principal(ctx, kind), self._access)

    async def _principal(self, context: aio.ServicerContext[Any, Any], kind: PrincipalKind) -> Principal:
        token = bearer_token(context)
        address = peer_address(context, self._proxies)
        if self._guesses is not None and (wait := self._guesses.wait(address)).total_seconds() > 0:
            raise Throttled(
                "too many unknown tokens from this address; try again later",
                retry_after_seconds=wait.total_seconds(),
            )
        try:
            principal = await self._tokens.principal(token)
        except Unauthenticated:
            if self._guesses is not None and token:
                self._guesses.strike(address)
            raise
        if self._access is not None and self._access.revoked(principal, _token_key(token)):
            # The cache and the access monitor's view disagree: one of them is stale (the account changed
            # since the cache entry, or the token or account is newer than the view). The store decides.
            principal = await self._tokens.fresh(token)
        if principal.kind is not kind:
            raise PermissionDenied(f"{principal.name} is a {principal.kind} account; this needs a {kind}")
        return principal


Authenticate = Callable[[aio.ServicerContext[Any, Any]], Awaitable[Principal]]


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    authenticate: Authenticate,
    access: AccessMonitor | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    deserializer = handler.request_deserializer
    if not handler.request_streaming and deserializer is not None:
        deserializer = _tolerant(deserializer)  # request streams (camera ingest) refuse item by item
    serializers = {"request_deserializer": deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, method, authenticate, access), **serializers
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, method, authenticate, access), **serializers
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _unary(handler.stream_unary, method, authenticate), **serializers
        )
    return grpc.unary_unary_rpc_method_handler(
        _unary(handler.unary_unary, method, authenticate), **serializers
    )


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands for a request whose bytes are not a valid message, so that the call can be refused with
    INVALID_ARGUMENT and a reason rather than the UNKNOWN grpc gives a failed deserializer."""

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return Undecodable(str(exc))

    return deserialize


def _decoded(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidInput(f"the request could not be decoded: {request.reason}")
    if isinstance(request, Message):
        check_limits(request)


def _unary(behaviour: Any, method: str, authenticate: Authenticate) -> Any:
    async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            token = _principal.set(await authenticate(context))
            _decoded(request)
            try:
                return await behaviour(request, context)
            finally:
                _principal.reset(token)
        except (aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)

    return wrapped


def _streaming(
    behaviour: Any, method: str, authenticate: Authenticate, access: AccessMonitor | None = None
) -> Any:
    async def wrapped(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            # Set for this RPC's task; tasks the servicer spawns copy it.
            principal = await authenticate(context)
            _principal.set(principal)
            _decoded(request)
            with _ended_on_revocation(access, principal, _token_key(bearer_token(context)), context):
                async for response in behaviour(request, context):
                    yield response
        except (aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)

    return wrapped


@contextlib.contextmanager
def _ended_on_revocation(
    access: AccessMonitor | None, principal: Principal, token_key: str, context: aio.ServicerContext[Any, Any]
) -> Iterator[None]:
    """While the stream runs, ends it with UNAUTHENTICATED as soon as the access monitor says its caller
    may no longer act: the status goes to the client first, then the RPC's task is cancelled, so a stream
    that is waiting (for a camera's next message, for the next alert) ends too."""
    if access is None:
        yield
        return
    loop = asyncio.get_running_loop()
    rpc = asyncio.current_task()
    ending: list[asyncio.Task[None]] = []

    async def end(reason: str) -> None:
        logger.info("ending a stream: its caller's access changed")
        with contextlib.suppress(aio.AbortError, aio.UsageError):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
        if rpc is not None:
            rpc.cancel()

    def check() -> None:
        reason = access.revoked(principal, token_key)
        if reason is not None and not ending:
            ending.append(loop.create_task(end(reason)))

    def on_change(names: frozenset[str]) -> None:
        if principal.name in names:
            loop.call_soon_threadsafe(check)

    unsubscribe = access.listen(on_change)
    try:
        yield
    finally:
        unsubscribe()
