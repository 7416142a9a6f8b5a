"""The models reachable through ``execute``/``execute_kw`` and JSON-2, and how a call reaches a
method.

An RPC call goes through the same gates, in the same order, as in Odoo 18's
``odoo.service.model`` and ``odoo.api.call_kw``: a private method name is refused
(``AccessError``), an unknown model is a ``UserError``, an unknown method an ``AttributeError``
(fault 1), arguments that do not fit the method's signature a ``TypeError`` (fault 1), and only
then does the method run, where the addon's own group check raises ``AccessError`` for a caller
outside CreativeFlow / Orchestrator.

A JSON-2 call (``call_named``) follows Odoo 19's ``WebJson2Controller.web_json_2_rpc`` instead:
an unknown model is a 404 (``NotFound``), a private name an ``AccessError`` (403, from
``get_public_method``), an unknown method a 404, ``ids`` on an ``@api.model`` method or arguments
that do not bind a 422 (``UnprocessableEntity``); then the same group check and the method.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .ledger import CreditLedger, Result
from .rules import DEFAULT_HISTORY_LIMIT
from .seed import GROUP_ORCHESTRATOR, UserSeed

CREDIT_SERVICE = "creativeflow.credit.service"
DATA_MODELS = (
    "creativeflow.subscription.tier",
    "creativeflow.credit.account",
    "creativeflow.credit.ledger",
)
# Odoo's ``regex_private``: names starting with an underscore, and ``init``.
_PRIVATE_METHOD = re.compile(r"^(_.*|init)$")

RemoteMethod = Callable[..., Any]
"""A model method as the wire sees it: the caller first, then the call's own arguments."""


@dataclass(frozen=True, slots=True)
class RemoteModel:
    name: str
    methods: Mapping[str, RemoteMethod] = field(default_factory=dict)
    required_group: str | None = None
    group_label: str = ""
    label: str = ""  # how the addon's access error names the model


class ModelRegistry:
    """The emulated models by name."""

    def __init__(self, models: Iterable[RemoteModel]) -> None:
        self._models = {model.name: model for model in models}

    def call_named(
        self,
        caller: UserSeed,
        model_name: str,
        method_name: str,
        ids: object,
        params: dict[str, Any],
        before_apply: Callable[[], None],
    ) -> Any:
        """Run one model method for JSON-2: arguments by name only; every emulated method is an
        ``@api.model`` one, so any ``ids`` are refused."""
        model = self._models.get(model_name)
        if model is None:
            raise errors.HttpError(404, f"the model {model_name!r} does not exist")
        if method_name.startswith("_"):  # Odoo 19's get_public_method
            raise errors.AccessError(
                f"Private methods (such as '{model.name}.{method_name}') cannot be called remotely."
            )
        method = model.methods.get(method_name)
        if method is None:
            raise errors.HttpError(404, f"The method '{model.name}.{method_name}' does not exist")
        if ids:
            raise errors.HttpError(422, f"cannot call {model.name}.{method_name} with ids")
        try:
            inspect.signature(method).bind(caller, **params)
        except TypeError as exc:
            raise errors.HttpError(422, str(exc)) from None
        _check_group(caller, model)
        before_apply()
        return method(caller, **params)

    def call(
        self,
        caller: UserSeed,
        model_name: object,
        method_name: object,
        args: list[Any],
        kwargs: dict[str, Any],
        before_apply: Callable[[], None],
    ) -> Any:
        """Run one model method; ``before_apply`` runs just before it could change anything."""
        model = self._models.get(model_name) if isinstance(model_name, str) else None
        if model is None:
            raise errors.UserError(f"Object {model_name} doesn't exist")
        name = _check_method_name(model.name, method_name)
        method = model.methods.get(name)
        if method is None:
            raise errors.ApplicationError(
                f"The method '{name}' does not exist on the model '{model.name}'",
                python_class="AttributeError",
            )
        # Odoo's call_kw pops the context before calling the method.
        call_kwargs = {key: value for key, value in kwargs.items() if key != "context"}
        bind_arguments(name, method, (caller, *args), call_kwargs)
        _check_group(caller, model)
        before_apply()
        return method(caller, *args, **call_kwargs)


def bind_arguments(
    name: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Refuse arguments that do not fit, with the ``TypeError`` Python would raise."""
    try:
        inspect.signature(function).bind(*args, **kwargs)
    except TypeError as exc:
        raise errors.ApplicationError(f"{name}() {exc}", python_class="TypeError") from None


def _check_method_name(model_name: str, method_name: object) -> str:
    if not isinstance(method_name, str):
        raise errors.ApplicationError(
            "expected string or bytes-like object", python_class="TypeError"
        )
    if _PRIVATE_METHOD.match(method_name):
        raise errors.AccessError(
            f"Private methods (such as '{model_name}.{method_name}') cannot be called remotely."
        )
    return method_name


def _check_group(caller: UserSeed, model: RemoteModel) -> None:
    if model.required_group is not None and model.required_group not in caller.groups:
        raise errors.AccessError(f"Only members of {model.group_label} may call {model.label}.")


class CreditServiceEndpoint:
    """``creativeflow.credit.service``: the addon's public methods, with its argument names.

    The signatures are the contract's, so positional arguments and keyword arguments
    (``execute_kw``'s ``kwargs``) bind exactly as they would on the real AbstractModel.
    """

    def __init__(self, ledger: CreditLedger) -> None:
        self._ledger = ledger

    def get_entitlements(self, caller: UserSeed, platform_user_id: Any) -> Result:
        return self._ledger.get_entitlements(platform_user_id)

    def debit(
        self,
        caller: UserSeed,
        platform_user_id: Any,
        request_id: Any,
        action: Any,
        spec: Any,
        correlation_id: Any = False,
    ) -> Result:
        return self._ledger.debit(platform_user_id, request_id, action, spec, correlation_id)

    def refund(
        self,
        caller: UserSeed,
        request_id: Any,
        action: Any,
        reason: Any,
        correlation_id: Any = False,
    ) -> Result:
        return self._ledger.refund(request_id, action, reason, correlation_id)

    def ledger_by_requests(self, caller: UserSeed, request_ids: Any) -> Result:
        return self._ledger.ledger_by_requests(request_ids)

    def ledger_window(
        self, caller: UserSeed, since: Any, until: Any, limit: Any = 1000, offset: Any = 0
    ) -> Result:
        return self._ledger.ledger_window(since, until, limit, offset)

    def quote(self, caller: UserSeed, platform_user_id: Any, spec: Any) -> Result:
        return self._ledger.quote(platform_user_id, spec)

    def ledger_for_user(
        self,
        caller: UserSeed,
        platform_user_id: Any,
        limit: Any = DEFAULT_HISTORY_LIMIT,
        offset: Any = 0,
    ) -> Result:
        return self._ledger.ledger_for_user(platform_user_id, limit, offset)

    def record_generated_asset(self, caller: UserSeed, asset: Any) -> Result:
        return self._ledger.record_generated_asset(asset)

    def methods(self) -> dict[str, RemoteMethod]:
        return {
            "get_entitlements": self.get_entitlements,
            "debit": self.debit,
            "refund": self.refund,
            "ledger_by_requests": self.ledger_by_requests,
            "ledger_window": self.ledger_window,
            "quote": self.quote,
            "ledger_for_user": self.ledger_for_user,
            "record_generated_asset": self.record_generated_asset,
        }


def context_get(caller: UserSeed) -> dict[str, Any]:
    """``res.users.context_get``: odoorpc reads the user's context right after logging in."""
    return {"lang": "en_US", "tz": "UTC", "uid": caller.uid}


def build_registry(ledger: CreditLedger) -> ModelRegistry:
    service = RemoteModel(
        name=CREDIT_SERVICE,
        methods=CreditServiceEndpoint(ledger).methods(),
        required_group=GROUP_ORCHESTRATOR,
        group_label="CreativeFlow / Orchestrator",
        label="the credit service",
    )
    users = RemoteModel(name="res.users", methods={"context_get": context_get})
    # The data models exist (so their names are not "unknown objects"), but their ORM methods
    # (search_read, read...) are not emulated: the orchestrator only calls the service.
    data_models = [RemoteModel(name=name) for name in DATA_MODELS]
    return ModelRegistry([service, users, *data_models])
