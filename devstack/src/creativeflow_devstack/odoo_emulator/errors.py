"""The errors the emulated server reports, shaped like Odoo reports its own.

Odoo turns every exception that escapes an RPC into one of three wire shapes: an XML-RPC fault
whose code says which family the exception belongs to, a JSON-RPC ``error`` object naming the
Python class, or (JSON-2, Odoo 19) an HTTP status with a JSON body naming the class. Clients (and
the orchestrator's adapter) branch on exactly those things, so each error here carries all three,
and nothing else about it matters to the wire.

    OdooError                          fault  JSON ``name``                      JSON-2 status
    ├── UserError                      2      odoo.exceptions.UserError          422
    ├── ValidationError                2      odoo.exceptions.ValidationError    422
    ├── AccessDenied                   3      odoo.exceptions.AccessDenied       403
    ├── AccessError                    4      odoo.exceptions.AccessError        403
    ├── ApplicationError               1      the Python class, e.g.             500
    │                                         builtins.AttributeError
    └── HttpError                      -      werkzeug.exceptions.<Class>        its own code
                                              (JSON-2 only: Unauthorized 401, NotFound 404,
                                              UnprocessableEntity 422, BadRequest 400)

The JSON-2 statuses are the ``http_status`` of Odoo 19's exception classes (``odoo/exceptions.py``)
and the codes of the werkzeug exceptions its ``/json/2`` controller raises. A fault 1 carries a
traceback as its fault string (Odoo formats the real one); faults 2 to 4 carry only the message,
as Odoo does.
"""

from __future__ import annotations

from typing import ClassVar

FAULT_APPLICATION_ERROR = 1
FAULT_WARNING = 2
FAULT_ACCESS_DENIED = 3
FAULT_ACCESS_ERROR = 4

# Stands in for the frames of a real Odoo traceback: honest about where it comes from.
_EMULATED_FRAME = '  File "<creativeflow odoo emulator>", line 1, in dispatch_rpc\n'


class OdooError(Exception):
    """An exception the emulated Odoo lets escape to the client."""

    fault_code: ClassVar[int] = FAULT_APPLICATION_ERROR
    http_status: ClassVar[int] = 500
    module: ClassVar[str] = "odoo.exceptions"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def arguments(self) -> list[object]:
        """The exception's ``args``, as Odoo's ``serialize_exception`` reports them."""
        return [self.message]

    @property
    def class_name(self) -> str:
        return type(self).__name__

    @property
    def python_module(self) -> str:
        return self.module

    @property
    def qualified_name(self) -> str:
        """The JSON-RPC ``data.name``: ``module.Class``, as Odoo's ``serialize_exception``."""
        return f"{self.python_module}.{self.class_name}"

    def traceback_text(self) -> str:
        """A traceback-like text ending the way Python's own formatting ends."""
        is_builtin = self.python_module == "builtins"
        last_line = self.class_name if is_builtin else self.qualified_name
        return f"Traceback (most recent call last):\n{_EMULATED_FRAME}{last_line}: {self.message}\n"

    def fault_string(self) -> str:
        return self.message


class UserError(OdooError):
    fault_code = FAULT_WARNING
    http_status = 422


class ValidationError(UserError):
    pass


class AccessDenied(OdooError):
    """A wrong login, password or API key on a call: Odoo's message is always the same."""

    fault_code = FAULT_ACCESS_DENIED
    http_status = 403

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class AccessError(OdooError):
    fault_code = FAULT_ACCESS_ERROR
    http_status = 403


class ApplicationError(OdooError):
    """Any other exception: Odoo rolls the transaction back and answers fault 1.

    It names a Python exception class (``AttributeError``, ``psycopg2.OperationalError``...)
    because that is what a real server's JSON-RPC error names.
    """

    fault_code = FAULT_APPLICATION_ERROR

    def __init__(self, message: str, *, python_class: str, python_module: str = "builtins") -> None:
        super().__init__(message)
        self._python_class = python_class
        self._python_module = python_module

    @property
    def class_name(self) -> str:
        return self._python_class

    @property
    def python_module(self) -> str:
        return self._python_module

    def fault_string(self) -> str:
        return self.traceback_text()


class HttpError(OdooError):
    """A werkzeug HTTP exception raised by Odoo 19's ``/json/2`` route (never by the RPC services).

    Odoo serializes it with ``message`` = its description and ``arguments`` = [description, code],
    and answers its code as the HTTP status; ``headers`` are added to the response (a 401 carries
    ``WWW-Authenticate``).
    """

    module = "werkzeug.exceptions"
    _CLASS_NAMES: ClassVar[dict[int, str]] = {
        400: "BadRequest",
        401: "Unauthorized",
        404: "NotFound",
        422: "UnprocessableEntity",
    }

    def __init__(
        self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers

    @property
    def class_name(self) -> str:
        return self._CLASS_NAMES.get(self.status, "HTTPException")

    @property
    def arguments(self) -> list[object]:
        return [self.message, self.status]


def json2_status(error: OdooError) -> int:
    """The HTTP status a JSON-2 request ends with when ``error`` escapes the method."""
    return error.status if isinstance(error, HttpError) else error.http_status


def from_python_exception(exc: BaseException) -> ApplicationError:
    """Report an exception raised while decoding or binding a call, as Odoo would report it."""
    cls = type(exc)
    return ApplicationError(str(exc), python_class=cls.__qualname__, python_module=cls.__module__)


def unknown_database(database: object) -> ApplicationError:
    """What Odoo answers for a database it cannot open: PostgreSQL refuses the connection."""
    return ApplicationError(
        'connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
        f'FATAL:  database "{database}" does not exist\n',
        python_class="OperationalError",
        python_module="psycopg2",
    )
