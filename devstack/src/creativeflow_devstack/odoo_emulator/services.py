"""The RPC services behind both transports: ``common``, ``object`` and ``db``.

XML-RPC (``/xmlrpc/2/<service>``) and JSON-RPC (``/jsonrpc`` with ``{"service", "method",
"args"}``) both end in ``RpcServices.dispatch``, as both end in ``dispatch_rpc`` in Odoo, so the
two protocols cannot drift apart. The order of checks follows ``odoo.service.model.dispatch``:
the uid is converted with ``int()``, then (db, uid, password) is checked, then the service method
name, then the call itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from . import errors
from .auth import UserDirectory
from .models import ModelRegistry, bind_arguments
from .versions import DEFAULT_VERSION, ServerVersion

# what an emulator built without a version says (``common.version``)
VERSION_INFO: dict[str, Any] = ServerVersion.parse(DEFAULT_VERSION).common_version()


class CallGate(Protocol):
    """Told about each call just before it is applied: where injected faults strike."""

    def before_apply(self, model_method: str | None) -> None: ...


def describe_call(service: str, method: str, params: Sequence[Any]) -> tuple[str, str | None]:
    """``("object.execute_kw", "creativeflow.credit.service.debit")`` for counting and faults."""
    service_method = f"{service}.{method}"
    model_method = None
    if service == "object" and method in ("execute", "execute_kw") and len(params) >= 5:
        model, model_call = params[3], params[4]
        if isinstance(model, str) and isinstance(model_call, str):
            model_method = f"{model}.{model_call}"
    return service_method, model_method


class RpcServices:
    def __init__(
        self, directory: UserDirectory, registry: ModelRegistry, version: ServerVersion
    ) -> None:
        self._directory = directory
        self._registry = registry
        self._version = version

    def dispatch(
        self, service: object, method: object, params: Sequence[Any], gate: CallGate
    ) -> Any:
        if service == "common":
            return self._common(method, params, gate)
        if service == "object":
            return self._object(method, params, gate)
        if service == "db":
            return self._db(method, params, gate)
        raise errors.ApplicationError(repr(service), python_class="KeyError")

    # -- common --------------------------------------------------------------------------------

    def _common(self, method: object, params: Sequence[Any], gate: CallGate) -> Any:
        handlers: dict[str, Callable[..., Any]] = {
            "version": self._version.common_version,
            "about": self._about,
            "login": self._login,
            "authenticate": self._authenticate,
        }
        handler = handlers.get(method) if isinstance(method, str) else None
        if handler is None:
            raise errors.ApplicationError(f"Method not found: {method}", python_class="Exception")
        bind_arguments(f"exp_{method}", handler, tuple(params), {})
        gate.before_apply(None)
        return handler(*params)

    def _about(self, extended: bool = False) -> Any:
        info = "See http://openerp.com"
        return [info, str(self._version)] if extended else info

    def _login(self, db: Any, login: Any, password: Any) -> int | bool:
        return self._directory.login(db, login, password)

    def _authenticate(self, db: Any, login: Any, password: Any, user_agent_env: Any) -> int | bool:
        if user_agent_env and not isinstance(user_agent_env, dict):
            raise errors.ApplicationError(
                "'user_agent_env' must be a mapping", python_class="TypeError"
            )
        return self._directory.login(db, login, password)

    # -- object --------------------------------------------------------------------------------

    def _object(self, method: object, params: Sequence[Any], gate: CallGate) -> Any:
        if len(params) < 3:
            raise errors.ApplicationError("tuple index out of range", python_class="IndexError")
        db, uid, password = params[0], _as_uid(params[1]), params[2]
        caller = self._directory.check(db, uid, password)
        if method == "execute":
            model, name, args, kwargs = _execute_arguments(params[3:])
        elif method == "execute_kw":
            model, name, args, kwargs = _execute_kw_arguments(params[3:])
        else:
            raise errors.ApplicationError(
                f"Method not available {method}", python_class="NameError"
            )
        model_method = f"{model}.{name}"
        return self._registry.call(
            caller, model, name, args, kwargs, lambda: gate.before_apply(model_method)
        )

    # -- db ------------------------------------------------------------------------------------

    def _db(self, method: object, params: Sequence[Any], gate: CallGate) -> Any:
        handlers: dict[str, Callable[..., Any]] = {
            "list": lambda document=False: [self._directory.database],
            "db_exist": lambda db_name: db_name == self._directory.database,
            "server_version": lambda: str(self._version),
        }
        handler = handlers.get(method) if isinstance(method, str) else None
        if handler is None:
            raise errors.ApplicationError(f"'Method not found: {method}'", python_class="KeyError")
        bind_arguments(f"exp_{method}", handler, tuple(params), {})
        gate.before_apply(None)
        return handler(*params)


def _as_uid(value: Any) -> int:
    """Odoo runs ``int()`` on the uid before anything else; what fails is a fault 1."""
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise errors.from_python_exception(exc) from None


def _execute_arguments(rest: Sequence[Any]) -> tuple[Any, Any, list[Any], dict[str, Any]]:
    """``execute(db, uid, password, model, method, *args)``."""
    if len(rest) < 2:
        raise errors.ApplicationError(
            "execute() missing required positional arguments: 'obj' and 'method'",
            python_class="TypeError",
        )
    return rest[0], rest[1], list(rest[2:]), {}


def _execute_kw_arguments(rest: Sequence[Any]) -> tuple[Any, Any, list[Any], dict[str, Any]]:
    """``execute_kw(db, uid, password, model, method, args, kwargs=None)``."""
    if not 3 <= len(rest) <= 4:
        raise errors.ApplicationError(
            f"execute_kw() takes from 5 to 6 positional arguments but {len(rest) + 2} were given",
            python_class="TypeError",
        )
    model, name, args = rest[0], rest[1], rest[2]
    kwargs = rest[3] if len(rest) == 4 else None
    if not isinstance(args, list | tuple):
        raise errors.ApplicationError(
            "execute() argument after * must be an iterable", python_class="TypeError"
        )
    if kwargs and not isinstance(kwargs, dict):
        raise errors.ApplicationError(
            "execute() argument after ** must be a mapping", python_class="TypeError"
        )
    return model, name, list(args), dict(kwargs or {})
