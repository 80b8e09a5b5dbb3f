"""BC's error body, {"error":{"code":..., "message":"...  CorrelationId:  <guid>."}}
(codes: learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/dynamics-error-codes; the
CorrelationId suffix is observed, not documented).

BcError is not a sandbox failure: it is the HTTP error the BC stand-in answers with.
"""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from sandbox.errors import SandboxError


class BcError(SandboxError):
    """An HTTP error in BC's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        correlation: bool = True,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.correlation = correlation
        super().__init__(f"{status} {code}")

    def body(self, correlation_id: str | None = None) -> dict[str, object]:
        """The JSON error body; BC appends two spaces, 'CorrelationId:', two spaces, the id and a period."""
        message = self.message
        if self.correlation:
            message = f"{message}  CorrelationId:  {correlation_id or uuid.uuid4()}."
        return {"error": {"code": self.code, "message": message}}

    def response(self, correlation_id: str) -> JSONResponse:
        """As an HTTP response."""
        return JSONResponse(self.body(correlation_id), status_code=self.status, headers=self.headers)


def not_found_segment(segment: str) -> BcError:
    """An unknown entity set or navigation segment."""
    return BcError(404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{segment}'.")


def no_route(url: str) -> BcError:
    """A route under api/ that no installed app publishes: 404, "this endpoint isn't available in metadata"
    (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/web-service-troubleshooting).
    """
    # Code and message as BC online answered a custom API route that had gone (github.com/microsoft/AL/issues/8283);
    # that body carries no CorrelationId.
    return BcError(
        404,
        "BadRequest_NotFound",
        f"No HTTP resource was found that matches the request URI '{url}'.",
        correlation=False,
    )


def syntax_error(detail: str) -> BcError:
    """A malformed URL or query option."""
    return BcError(400, "BadRequest_NotFound", f"Bad Request - Error in query syntax. {detail}".strip())


def invalid_body(detail: str) -> BcError:
    """A request body BC cannot read."""
    return BcError(400, "BadRequest", f"Invalid Request Body. {detail}".strip())
