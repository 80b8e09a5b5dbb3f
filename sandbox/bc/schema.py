"""Entity types of the standard API v2.0 that the sandbox serves, with BC's field names
(learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sandbox.bc.errors import BcError, invalid_body

JsonValue = Any  # a decoded JSON value inside one record (records are JSON documents by nature)


@dataclass(frozen=True, slots=True)
class Field:
    """One property: EDM kind, writability, limits and allowed values."""

    kind: str  # string | decimal | int | bool | date | datetime | guid
    read_only: bool = False
    max_length: int | None = None
    options: tuple[str, ...] = ()
    default: JsonValue = None


def _s(n: int = 100, **kw: Any) -> Field:
    return Field("string", max_length=n, **kw)


_RO_DEC = Field("decimal", read_only=True, default=0)
_DEC = Field("decimal", default=0)
_GUID = Field("guid", default="00000000-0000-0000-0000-000000000000")
_ADDRESS = {
    "addressLine1": _s(100, default=""),
    "addressLine2": _s(50, default=""),
    "city": _s(30, default=""),
    "state": _s(30, default=""),
    "country": _s(10, default=""),
    "postalCode": _s(20, default=""),
}


def _block(prefix: str) -> dict[str, Field]:
    return {f"{prefix}{name[0].upper()}{name[1:]}": spec for name, spec in _ADDRESS.items()}


@dataclass(frozen=True, slots=True)
class EntityType:
    """An entity set: its EDM type name, fields, number series and default order."""

    set_name: str
    type_name: str
    fields: dict[str, Field]
    number_prefix: str | None = None  # number series (None: the entity has no `number`)
    parent: str | None = None  # for lines: the header entity set
    nav: str | None = None  # for headers: the lines navigation property
    actions: tuple[str, ...] = ()
    writable: bool = True
    custom_api: bool = False  # a custom API page: served under the configured custom APIs only, never v2.0

    def field_named(self, name: str) -> Field:
        """A property of this type, or BC's 400 for an unknown one."""
        spec = self.fields.get(name)
        if spec is None:
            raise BcError(
                400,
                "BadRequest_NotFound",
                f"Could not find a property named '{name}' on type 'Microsoft.NAV.{self.type_name}'.",
            )
        return spec


COMMON = {"id": Field("guid", read_only=True), "lastModifiedDateTime": Field("datetime", read_only=True)}

COMPANIES = EntityType(
    "companies",
    "company",
    {
        "id": Field("guid", read_only=True),
        "systemVersion": _s(read_only=True),
        "timestamp": Field("int", read_only=True),
        "name": _s(30, read_only=True),
        "displayName": _s(250, read_only=True),
        "businessProfileId": _s(250, read_only=True),
        "systemCreatedAt": Field("datetime", read_only=True),
        "systemCreatedBy": Field("guid", read_only=True),
        "systemModifiedAt": Field("datetime", read_only=True),
        "systemModifiedBy": Field("guid", read_only=True),
    },
    writable=False,
)

CUSTOMERS = EntityType(
    "customers",
    "customer",
    {
        **COMMON,
        "number": _s(20),
        "displayName": _s(100, default=""),
        "type": Field("string", options=("Company", "Person"), default="Company"),
        **_ADDRESS,
        "phoneNumber": _s(30, default=""),
        "email": _s(80, default=""),
        "website": _s(80, default=""),
        "salespersonCode": _s(20, default=""),
        "balanceDue": _RO_DEC,
        "creditLimit": _DEC,
        "taxLiable": Field("bool", default=False),
        "taxAreaId": _GUID,
        "taxAreaDisplayName": _s(read_only=True, default=""),
        "taxRegistrationNumber": _s(20, default=""),
        "currencyId": _GUID,
        "currencyCode": _s(10, default=""),
        "paymentTermsId": _GUID,
        "shipmentMethodId": _GUID,
        "paymentMethodId": _GUID,
        "blocked": Field("string", options=(" ", "Ship", "Invoice", "All"), default=" "),
    },
    number_prefix="C",
)

VENDORS = EntityType(
    "vendors",
    "vendor",
    {
        **COMMON,
        "number": _s(20),
        "displayName": _s(100, default=""),
        **_ADDRESS,
        "phoneNumber": _s(30, default=""),
        "email": _s(80, default=""),
        "website": _s(80, default=""),
        "taxRegistrationNumber": _s(20, default=""),
        "currencyId": _GUID,
        "currencyCode": _s(10, default=""),
        "irs1099Code": _s(10, default=""),
        "paymentTermsId": _GUID,
        "paymentMethodId": _GUID,
        "taxLiable": Field("bool", default=False),
        "blocked": Field("string", options=(" ", "Payment", "All"), default=" "),
        "balance": _RO_DEC,
    },
    number_prefix="V",
)

ITEMS = EntityType(
    "items",
    "item",
    {
        **COMMON,
        "number": _s(20),
        "displayName": _s(100, default=""),
        "displayName2": _s(50, default=""),
        "type": Field("string", options=("Inventory", "Service", "Non-Inventory"), default="Inventory"),
        "itemCategoryId": _GUID,
        "itemCategoryCode": _s(20, default=""),
        "blocked": Field("bool", default=False),
        "gtin": _s(14, default=""),
        "inventory": _RO_DEC,
        "unitPrice": _DEC,
        "priceIncludesTax": Field("bool", default=False),
        "unitCost": _DEC,
        "taxGroupId": _GUID,
        "taxGroupCode": _s(20, default=""),
        "baseUnitOfMeasureId": _GUID,
        "baseUnitOfMeasureCode": _s(10, default="PCS"),
        "generalProductPostingGroupId": _GUID,
        "generalProductPostingGroupCode": _s(20, default="RETAIL"),
        "inventoryPostingGroupId": _GUID,
        "inventoryPostingGroupCode": _s(20, default="RESALE"),
    },
    number_prefix="",
)

_LINE = {
    **COMMON,
    "documentId": Field("guid", read_only=True),
    "sequence": Field("int"),
    "itemId": _GUID,
    "accountId": _GUID,
    "lineType": Field(
        "string", options=("Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge"), default="Item"
    ),
    "lineObjectNumber": _s(20, default=""),
    "description": _s(100, default=""),
    "description2": _s(50, default=""),
    "unitOfMeasureId": _GUID,
    "unitOfMeasureCode": _s(10, default=""),
    "quantity": _DEC,
    "unitPrice": _DEC,
    "discountAmount": _DEC,
    "discountPercent": _DEC,
    "discountAppliedBeforeTax": Field("bool", read_only=True, default=False),
    "amountExcludingTax": _RO_DEC,
    "taxCode": _s(20, default=""),
    "taxPercent": _RO_DEC,
    "totalTaxAmount": _RO_DEC,
    "amountIncludingTax": _RO_DEC,
    "netAmount": _RO_DEC,
    "netTaxAmount": _RO_DEC,
    "netAmountIncludingTax": _RO_DEC,
    "shipmentDate": Field("date", default="0001-01-01"),
    "itemVariantId": _GUID,
    "locationId": _GUID,
}

SALES_ORDER_LINES = EntityType(
    "salesOrderLines",
    "salesOrderLine",
    {
        **_LINE,
        "shippedQuantity": _RO_DEC,
        "invoicedQuantity": _RO_DEC,
        "invoiceQuantity": _DEC,
        "shipQuantity": _DEC,
    },
    parent="salesOrders",
)

SALES_INVOICE_LINES = EntityType("salesInvoiceLines", "salesInvoiceLine", dict(_LINE), parent="salesInvoices")

_HEADER = {
    **COMMON,
    "number": _s(20),
    "externalDocumentNumber": _s(35, default=""),
    "customerId": _GUID,
    "customerNumber": _s(20, default=""),
    "customerName": _s(100, read_only=True, default=""),
    "billToName": _s(100, read_only=True, default=""),
    "billToCustomerId": _GUID,
    "billToCustomerNumber": _s(20, default=""),
    "shipToName": _s(100, default=""),
    "shipToContact": _s(100, default=""),
    **_block("sellTo"),
    **_block("billTo"),
    **_block("shipTo"),
    "currencyId": _GUID,
    "currencyCode": _s(10, default=""),
    "pricesIncludeTax": Field("bool", read_only=True, default=False),
    "paymentTermsId": _GUID,
    "shipmentMethodId": _GUID,
    "salesperson": _s(20, default=""),
    "discountAmount": _DEC,
    "discountAppliedBeforeTax": Field("bool", read_only=True, default=False),
    "totalAmountExcludingTax": _RO_DEC,
    "totalTaxAmount": _RO_DEC,
    "totalAmountIncludingTax": _RO_DEC,
    "phoneNumber": _s(30, default=""),
    "email": _s(80, default=""),
}

SALES_ORDERS = EntityType(
    "salesOrders",
    "salesOrder",
    {
        **_HEADER,
        "orderDate": Field("date"),
        "postingDate": Field("date"),
        "requestedDeliveryDate": Field("date", default="0001-01-01"),
        "partialShipping": Field("bool", default=True),
        "fullyShipped": Field("bool", read_only=True, default=False),
        "status": Field("string", read_only=True, options=("Draft", "In Review", "Open"), default="Draft"),
    },
    number_prefix="S-ORD",
    nav="salesOrderLines",
    actions=("shipAndInvoice",),
)

SALES_INVOICES = EntityType(
    "salesInvoices",
    "salesInvoice",
    {
        **_HEADER,
        "invoiceDate": Field("date"),
        "postingDate": Field("date"),
        "dueDate": Field("date"),
        "customerPurchaseOrderReference": _s(35, default=""),
        "orderId": Field("guid", read_only=True, default="00000000-0000-0000-0000-000000000000"),
        "orderNumber": _s(20, read_only=True, default=""),
        "remainingAmount": _RO_DEC,
        "status": Field(
            "string",
            read_only=True,
            options=(" ", "Draft", "In Review", "Open", "Paid", "Canceled", "Corrective"),
            default="Draft",
        ),
    },
    number_prefix="S-INV",
    nav="salesInvoiceLines",
    actions=("post",),
)

# A custom API page over an extension's own table, as custom pages often are: `id` is the table's SystemId
# (ODataKeyFields = SystemId) but SystemModifiedAt is not exposed, so the entity has no `lastModifiedDateTime`.
# BC then sends a `collection` notification as the bare collection URL, a full re-read (reference
# bc-webhooks-connections-identities.md A3, codeunit 6154 GetEntityCollectionUrl), and no `gt` filter can find
# what changed (E1 "Gotchas": some APIs have no `lastModifiedDateTime`). Versions are the ETag alone.
SHIPMENT_TRACKINGS = EntityType(
    "shipmentTrackings",
    "shipmentTracking",
    {
        "id": Field("guid", read_only=True),
        "orderNumber": _s(20, default=""),
        "carrier": _s(50, default=""),
        "trackingNumber": _s(50, default=""),
        "status": Field("string", options=("Pending", "Shipped", "Delivered"), default="Pending"),
    },
    custom_api=True,
)

ENTITY_TYPES: dict[str, EntityType] = {
    t.set_name: t
    for t in (
        COMPANIES,
        CUSTOMERS,
        VENDORS,
        ITEMS,
        SALES_ORDERS,
        SALES_ORDER_LINES,
        SALES_INVOICES,
        SALES_INVOICE_LINES,
        SHIPMENT_TRACKINGS,
    )
}
COMPANY_SETS = tuple(name for name in ENTITY_TYPES if name != "companies")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def coerce(entity: EntityType, name: str, value: JsonValue) -> JsonValue:
    """Check a written value against the field's EDM kind and limits; BC's error codes on failure."""
    spec = entity.fields.get(name)
    if spec is None:
        raise invalid_body(
            f"The property '{name}' does not exist on type 'Microsoft.NAV.{entity.type_name}'. "
            "Make sure to only use property names that are defined by the type."
        )
    if value is None:
        return spec.default
    kind = spec.kind
    if kind == "string":
        if not isinstance(value, str):
            raise _convert(value, "Edm.String")
        if spec.options and value not in spec.options:
            raise BcError(
                400,
                "Application_EvaluateException",
                f'The value "{value}" can\'t be evaluated into type Option. The existing options are: {",".join(spec.options)}',
            )
        if spec.max_length is not None and len(value) > spec.max_length:
            raise BcError(
                400,
                "Application_StringExceededLength",
                f"The length of the string is {len(value)}, but it must be less than or equal to {spec.max_length} characters. Value: {value}",
            )
        return value
    if kind in ("decimal", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _convert(value, "Edm.Decimal" if kind == "decimal" else "Edm.Int32")
        return int(value) if kind == "int" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _convert(value, "Edm.Boolean")
        return value
    if kind == "guid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise BcError(
                400,
                "Application_InvalidGUID",
                f"Invalid format of GUID string. The correct format of the GUID string is: CDEF7890-ABCD-0123-1234-567890ABCDEF where 0-9, A-F symbolizes hexadecimal digits. Value: {value}",
            ) from None
    if kind == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise _convert(value, "Edm.Date")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _convert(value, "Edm.Date") from None
        return value
    if kind == "datetime":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise _convert(value, "Edm.DateTimeOffset") from None
        return value
    return value


def _convert(value: JsonValue, edm: str) -> BcError:
    return BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm}'.")
