"""The names of the contract's arguments (``odoo_contracts/README.md``, "Public methods").

XML-RPC and JSON-RPC pass a method's arguments by position (``execute_kw`` ``args``); JSON-2 passes
them by name only (the body is a JSON object), so the JSON-2 transport names the positional
arguments the client builds with this table. The contract suite checks it against the README.
"""

from __future__ import annotations

SERVICE_MODEL = "creativeflow.credit.service"

SERVICE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "get_entitlements": ("platform_user_id",),
    "debit": ("platform_user_id", "request_id", "action", "spec", "correlation_id"),
    "refund": ("request_id", "action", "reason", "correlation_id"),
    "ledger_by_requests": ("request_ids",),
    "ledger_window": ("since", "until", "limit", "offset"),
    "quote": ("platform_user_id", "spec"),
    "ledger_for_user": ("platform_user_id", "limit", "offset"),
    "record_generated_asset": ("asset",),
}

# Other models' methods the adapter calls: ``res.users.context_get`` takes no argument.
_PARAMETERS: dict[tuple[str, str], tuple[str, ...]] = {
    **{(SERVICE_MODEL, method): names for method, names in SERVICE_PARAMETERS.items()},
    ("res.users", "context_get"): (),
}


def parameter_names(model: str, method: str) -> tuple[str, ...] | None:
    """The argument names of ``model.method`` in order, or ``None`` when the adapter does not know
    that method (its arguments must then be given by name)."""
    return _PARAMETERS.get((model, method))


def named_arguments(
    model: str, method: str, args: list[object], kwargs: dict[str, object]
) -> dict[str, object]:
    """``args`` named after the contract, merged with ``kwargs``; ``TypeError`` when that cannot
    be done (an unknown method with positional arguments, too many, or a name given twice)."""
    named = dict(kwargs)
    if not args:
        return named
    names = parameter_names(model, method)
    if names is None:
        raise TypeError(
            f"{model}.{method}: JSON-2 passes arguments by name only, and the adapter does not "
            "know this method's argument names: pass them as keywords"
        )
    if len(args) > len(names):
        raise TypeError(
            f"{model}.{method} takes at most {len(names)} arguments, {len(args)} were given"
        )
    for name, value in zip(names, args, strict=False):
        if name in named:
            raise TypeError(f"{model}.{method}: argument {name!r} given twice")
        named[name] = value
    return named
