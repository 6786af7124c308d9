"""The chain itself: a :class:`Call` (one invocation as the middleware sees it), the :class:`Middleware` base
class and the :class:`Chain` that runs a list of middleware around a handler and turns handlers into
functions the Azure Functions host can call (one decorator per kind of trigger).

A middleware is an object with one method, ``around(call, proceed)``: it may look at or fill in the call,
must call ``proceed()`` once to run the rest of the chain (or answer without it, as the parsing step does for
an invalid message), and returns what it returns. The first middleware of the list is the outermost.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import azure.functions as func

from ..bootstrap import Services
from ..messages import QueueMessageModel
from ..names import POISON_SUFFIX

Trigger = Literal["http", "queue", "poison", "timer"]
Outcome = Literal["ok", "error", "invalid", "retry"]
M = TypeVar("M", bound=QueueMessageModel)

CHAIN_ATTR = "__trapalert_chain__"  # set on every function the chain builds (see ChainInfo)


@dataclass(frozen=True)
class ChainInfo:
    """What a chain-built function says about itself (tests check every function of the app has one)."""

    trigger: Trigger
    queue: str | None  # the queue it reads (a poison monitor: the poison queue)
    handler: Callable[..., Any]  # the decorated function


@dataclass
class Call:
    """One invocation, as the middleware sees it; middleware fill in what they find out."""

    trigger: Trigger
    function: str  # the Python name of the function in function_app.py
    services: Services
    input: Any  # func.HttpRequest | func.QueueMessage | func.TimerRequest | None
    queue: str | None = None  # queue functions: their queue; poison monitors: the *source* queue
    model: type[QueueMessageModel] | None = None  # queue functions: the message model
    message: QueueMessageModel | None = None  # queue functions: the parsed message
    correlation_id: str | None = None
    outcome: Outcome = "ok"


class Middleware:
    """One concern around every invocation (override :meth:`around`)."""

    def around(self, call: Call, proceed: Callable[[], Any]) -> Any:
        return proceed()


HttpHandler = Callable[[func.HttpRequest, Services], func.HttpResponse]
QueueHandler = Callable[[M, Services], Any]
PoisonHandler = Callable[[func.QueueMessage, Services], "int | None"]
TimerHandler = Callable[[func.TimerRequest, Services], Any]


class Chain:
    def __init__(self, middleware: Sequence[Middleware], services: Callable[[], Services]):
        self.middleware = tuple(middleware)
        self.services = services

    def run(self, call: Call, handler: Callable[[], Any]) -> Any:
        """Run ``handler`` inside every middleware, the first one outermost."""

        def step(i: int) -> Any:
            if i == len(self.middleware):
                return handler()
            return self.middleware[i].around(call, lambda: step(i + 1))

        return step(0)

    # -- one decorator per kind of trigger: each returns the function the host calls ---------------
    def http(self) -> Callable[[HttpHandler], Callable[[func.HttpRequest], func.HttpResponse]]:
        """``fn(req, svc) -> HttpResponse`` as an HTTP function ``(req)``."""

        def decorate(fn: HttpHandler) -> Callable[[func.HttpRequest], func.HttpResponse]:
            def entry(req: func.HttpRequest) -> func.HttpResponse:
                svc = self.services()
                return self.run(Call("http", fn.__name__, svc, req), lambda: fn(req, svc))

            return _entry(entry, fn, ChainInfo("http", None, fn))

        return decorate

    def queue(
        self, queue: str, model: type[M]
    ) -> Callable[[QueueHandler[M]], Callable[[func.QueueMessage], None]]:
        """``fn(message: model, svc)`` as the queue function of ``queue`` ``(msg)``: the chain parses the
        body into ``model`` (an invalid one is recorded, not retried) and records failed attempts."""

        def decorate(fn: QueueHandler[M]) -> Callable[[func.QueueMessage], None]:
            def entry(msg: func.QueueMessage) -> None:
                svc = self.services()
                call = Call("queue", fn.__name__, svc, msg, queue=queue, model=model)
                self.run(call, lambda: fn(call.message, svc))

            return _entry(entry, fn, ChainInfo("queue", queue, fn))

        return decorate

    def poison_monitor(
        self, poison_queue: str
    ) -> Callable[[PoisonHandler], Callable[[func.QueueMessage], None]]:
        """``fn(msg, svc) -> record id | None`` as the monitor of ``poison_queue`` ``(msg)``; ``fn`` returns
        the id of the record it created (None: the message was recorded already), which the chain counts."""
        if not poison_queue.endswith(POISON_SUFFIX):
            raise ValueError(f"{poison_queue!r} is not a poison queue")
        source = poison_queue[: -len(POISON_SUFFIX)]

        def decorate(fn: PoisonHandler) -> Callable[[func.QueueMessage], None]:
            def entry(msg: func.QueueMessage) -> None:
                svc = self.services()
                self.run(Call("poison", fn.__name__, svc, msg, queue=source), lambda: fn(msg, svc))

            return _entry(entry, fn, ChainInfo("poison", poison_queue, fn))

        return decorate

    def timer(self) -> Callable[[TimerHandler], Callable[[func.TimerRequest], None]]:
        """``fn(timer, svc)`` as a timer function ``(timer)``."""

        def decorate(fn: TimerHandler) -> Callable[[func.TimerRequest], None]:
            def entry(timer: func.TimerRequest) -> None:
                svc = self.services()
                self.run(Call("timer", fn.__name__, svc, timer), lambda: fn(timer, svc))

            return _entry(entry, fn, ChainInfo("timer", None, fn))

        return decorate


def _entry(entry: Callable[..., Any], fn: Callable[..., Any], info: ChainInfo) -> Callable[..., Any]:
    """Name ``entry`` after ``fn`` and mark it. No ``__wrapped__``: the host reads ``entry``'s own signature
    (the binding's argument name and type), not ``fn``'s."""
    entry.__name__ = entry.__qualname__ = fn.__name__
    entry.__module__ = fn.__module__
    entry.__doc__ = fn.__doc__
    setattr(entry, CHAIN_ATTR, info)
    return entry


def chain_info(function: Callable[..., Any]) -> ChainInfo | None:
    """The chain's mark on a function (None: the function does not go through a chain)."""
    return getattr(function, CHAIN_ATTR, None)
