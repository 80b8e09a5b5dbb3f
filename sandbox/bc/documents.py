"""BC's business rules behind the API: validation, number series, document totals, lines, posting."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.bc.errors import BcError
from sandbox.bc.schema import ENTITY_TYPES, EntityType, JsonValue, coerce
from sandbox.bc.store import BcStore, Company, Row
from sandbox.config import SandboxConfig
from sandbox.ids import guid

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
_NAMES = {
    "customers": "Customer",
    "vendors": "Vendor",
    "items": "Item",
    "salesOrders": "Sales Header",
    "salesInvoices": "Sales Header",
}


def dialog(message: str) -> BcError:
    """An AL error dialog surfaced through the API."""
    return BcError(400, "Application_DialogException", message)


class Documents:
    """Create, update, delete and act on rows the way BC's API pages do."""

    def __init__(self, store: BcStore) -> None:
        self._store = store

    # --- generic -----------------------------------------------------------------------------------------
    def _clean(
        self, entity: EntityType, body: dict[str, JsonValue], creating: bool, row: Row | None = None
    ) -> dict[str, JsonValue]:
        values: dict[str, JsonValue] = {}
        for name, value in body.items():
            if name.startswith("@odata.") or (entity.nav is not None and name == entity.nav):
                continue
            coerced = coerce(entity, name, value)
            spec = entity.fields[name]
            if name == "id" and creating:
                values[name] = coerced
                continue
            if spec.read_only:
                if row is not None and row.data.get(name) == coerced:
                    continue  # echoing an unchanged read-only value back is harmless
                raise BcError(400, "BadRequest_InvalidOperation", f"The property '{name}' is read-only.")
            values[name] = coerced
        return values

    def create(
        self, company: Company, entity: EntityType, body: dict[str, JsonValue], parent: Row | None = None
    ) -> Row:
        """POST: a new row (deep insert of lines for document headers)."""
        if not entity.writable:
            raise BcError(
                405,
                "BadRequest_MethodNotAllowed",
                f"'POST' requests for '{entity.set_name}' of EdmType 'Entity' are not allowed within Microsoft Dynamics 365 Business Central OData web services.",
            )
        values = self._clean(entity, body, creating=True)
        row_id = values.pop("id", None)
        if row_id is not None and self._store.get(company, entity.set_name, str(row_id)) is not None:
            raise self._exists(entity, "Id", str(row_id))
        if entity.parent is not None:
            if parent is None:
                raise BcError(
                    400, "BadRequest", f"'{entity.set_name}' can only be created through its document."
                )
            return self._add_line(company, entity, parent, values, row_id)
        self._check_unique_number(company, entity, values.get("number"))
        if entity.nav is not None:
            return self._create_document(company, entity, values, body.get(entity.nav) or [], row_id)
        return self._store.insert(company, entity, values, row_id)

    def update(self, company: Company, entity: EntityType, row: Row, body: dict[str, JsonValue]) -> None:
        """PATCH: change writable fields (deep patch is not supported:
        learn.microsoft.com/dynamics365/business-central/dev-itpro/webservices/odata-known-limitations)."""
        if not entity.writable:
            raise BcError(
                405,
                "BadRequest_MethodNotAllowed",
                f"'PATCH' requests for '{entity.set_name}' of EdmType 'Entity' are not allowed within Microsoft Dynamics 365 Business Central OData web services.",
            )
        if entity.nav is not None and entity.nav in body:
            raise BcError(400, "BadRequest", "Deep update is not supported on this entity.")
        values = self._clean(entity, body, creating=False, row=row)
        if "number" in values and values["number"] != row.data.get("number"):
            self._check_unique_number(company, entity, values["number"])
        if entity.parent is not None:
            header = self._store.get(company, entity.parent, str(row.data["documentId"]))
            if header is not None:
                self._ensure_open(entity.parent, header)
            row.data.update(values)
            self._price_line(company, row, resolve_item="itemId" in values or "lineObjectNumber" in values)
            self._store.touch(row, company, entity.set_name)
            if header is not None:
                self._recalculate(company, ENTITY_TYPES[entity.parent], header)
            return
        if entity.nav is not None:
            self._ensure_open(entity.set_name, row)
            if "customerId" in values or "customerNumber" in values:
                merged = {**values}
                if "customerId" not in values:
                    merged["customerId"] = EMPTY_GUID
                self._apply_customer(company, merged)
                values.update(merged)
        row.data.update(values)
        self._store.touch(row, company, entity.set_name)

    def delete(self, company: Company, entity: EntityType, row: Row) -> None:
        """DELETE: a row (a document takes its lines with it)."""
        if not entity.writable:
            raise BcError(
                405,
                "BadRequest_MethodNotAllowed",
                f"'DELETE' requests for '{entity.set_name}' of EdmType 'Entity' are not allowed within Microsoft Dynamics 365 Business Central OData web services.",
            )
        if entity.parent is not None:
            header = self._store.get(company, entity.parent, str(row.data["documentId"]))
            if header is not None:
                self._ensure_open(entity.parent, header)
            self._store.delete(company, entity.set_name, str(row.data["id"]))
            if header is not None:
                self._recalculate(company, ENTITY_TYPES[entity.parent], header)
            return
        if entity.nav is not None:
            self._ensure_open(entity.set_name, row)
            for line in self.lines(company, entity, row):
                self._store.delete(company, entity.nav, str(line.data["id"]))
        self._store.delete(company, entity.set_name, str(row.data["id"]))

    def lines(self, company: Company, header_entity: EntityType, header: Row) -> list[Row]:
        """A document's lines in sequence order."""
        rows = [
            r
            for r in self._store.table(company, str(header_entity.nav)).values()
            if r.data["documentId"] == header.data["id"]
        ]
        return sorted(rows, key=lambda r: int(r.data["sequence"]))

    def _check_unique_number(self, company: Company, entity: EntityType, number: JsonValue) -> None:
        if number and any(
            r.data.get("number") == number for r in self._store.table(company, entity.set_name).values()
        ):
            raise self._exists(entity, "No.", str(number))

    def _exists(self, entity: EntityType, key: str, value: str) -> BcError:
        name = _NAMES.get(entity.set_name, entity.type_name)
        return BcError(
            409,
            "Internal_EntityWithSameKeyExists",
            f"The {name} already exists. Identification fields and values: {key}='{value}'",
        )

    # --- documents --------------------------------------------------------------------------------------------
    def _create_document(
        self,
        company: Company,
        entity: EntityType,
        values: dict[str, JsonValue],
        lines: JsonValue,
        row_id: JsonValue,
    ) -> Row:
        if not isinstance(lines, list):
            raise BcError(400, "BadRequest", f"The property '{entity.nav}' must be a collection.")
        self._apply_customer(company, values)
        today = self._store.today()
        for name in ("orderDate", "invoiceDate", "postingDate"):
            if name in entity.fields and not values.get(name):
                values[name] = today
        if "dueDate" in entity.fields and not values.get("dueDate"):
            values["dueDate"] = (
                date.fromisoformat(str(values.get("invoiceDate", today))) + timedelta(days=30)
            ).isoformat()
        header = self._store.insert(company, entity, values, str(row_id) if row_id else None)
        line_entity = ENTITY_TYPES[str(entity.nav)]
        for line in lines:
            if not isinstance(line, dict):
                raise BcError(400, "BadRequest", "Each line must be an object.")
            self._add_line(
                company,
                line_entity,
                header,
                self._clean(line_entity, line, creating=True),
                None,
                recalc=False,
            )
        self._recalculate(company, entity, header)
        return header

    def _apply_customer(self, company: Company, values: dict[str, JsonValue]) -> None:
        customer_id, number = values.get("customerId") or EMPTY_GUID, values.get("customerNumber") or ""
        customers = self._store.table(company, "customers")
        if customer_id != EMPTY_GUID:
            customer = customers.get(str(customer_id))
            if customer is None:
                raise dialog(
                    f"The Customer does not exist. Identification fields and values: Id='{customer_id}'"
                )
        elif number:
            customer = next((c for c in customers.values() if c.data["number"] == number), None)
            if customer is None:
                raise dialog(f"The Customer does not exist. Identification fields and values: No.='{number}'")
        else:
            raise dialog("A customerNumber or a customerID must be provided.")
        if customer.data["blocked"] == "All":
            raise dialog(
                f"You cannot create this type of document when Customer {customer.data['number']} is blocked with type All"
            )
        data = customer.data
        values.update(
            {
                "customerId": data["id"],
                "customerNumber": data["number"],
                "customerName": data["displayName"],
                "billToCustomerId": data["id"],
                "billToCustomerNumber": data["number"],
                "billToName": data["displayName"],
                "shipToName": data["displayName"],
                "currencyCode": data["currencyCode"],
            }
        )
        for prefix in ("sellTo", "billTo", "shipTo"):
            for name in ("addressLine1", "addressLine2", "city", "state", "country", "postalCode"):
                values.setdefault(f"{prefix}{name[0].upper()}{name[1:]}", data[name])

    def _add_line(
        self,
        company: Company,
        entity: EntityType,
        header: Row,
        values: dict[str, JsonValue],
        row_id: JsonValue,
        recalc: bool = True,
    ) -> Row:
        header_entity = ENTITY_TYPES[str(entity.parent)]
        self._ensure_open(header_entity.set_name, header)
        existing = [int(r.data["sequence"]) for r in self.lines(company, header_entity, header)]
        values.setdefault("sequence", (max(existing) if existing else 0) + 10000)
        values["documentId"] = header.data["id"]
        row = self._store.insert(company, entity, values, str(row_id) if row_id else None)
        self._price_line(company, row, resolve_item=True, explicit_price="unitPrice" in values)
        if recalc:
            self._recalculate(company, header_entity, header)
        return row

    def _price_line(
        self, company: Company, row: Row, resolve_item: bool, explicit_price: bool = True
    ) -> None:
        data = row.data
        if resolve_item and data["lineType"] == "Item":
            items = self._store.table(company, "items")
            item = items.get(str(data["itemId"])) if data["itemId"] != EMPTY_GUID else None
            if item is None and data["lineObjectNumber"]:
                item = next((i for i in items.values() if i.data["number"] == data["lineObjectNumber"]), None)
            if item is None:
                raise dialog(
                    "The Item does not exist. Identification fields and values: No.='"
                    + str(data["lineObjectNumber"])
                    + "'"
                )
            if item.data["blocked"]:
                raise dialog(f"Item {item.data['number']} is blocked.")
            data["itemId"], data["lineObjectNumber"] = item.data["id"], item.data["number"]
            data["description"] = data["description"] or item.data["displayName"]
            data["unitOfMeasureCode"] = data["unitOfMeasureCode"] or item.data["baseUnitOfMeasureCode"]
            if not explicit_price:
                data["unitPrice"] = item.data["unitPrice"]
        gross = round(float(data["quantity"]) * float(data["unitPrice"]), 2)
        discount = float(data["discountAmount"]) or round(gross * float(data["discountPercent"]) / 100, 2)
        net = round(gross - discount, 2)
        data.update(
            {
                "discountAmount": discount,
                "amountExcludingTax": net,
                "netAmount": net,
                "amountIncludingTax": net,
                "netAmountIncludingTax": net,
                "totalTaxAmount": 0,
                "netTaxAmount": 0,
            }
        )

    def _recalculate(self, company: Company, entity: EntityType, header: Row) -> None:
        total = round(sum(float(line.data["netAmount"]) for line in self.lines(company, entity, header)), 2)
        header.data.update(
            {"totalAmountExcludingTax": total, "totalTaxAmount": 0, "totalAmountIncludingTax": total}
        )
        if "remainingAmount" in header.data and header.data["status"] in ("Open",):
            header.data["remainingAmount"] = total
        self._store.touch(header, company, entity.set_name)

    def _ensure_open(self, set_name: str, header: Row) -> None:
        if set_name == "salesInvoices" and header.data["status"] not in ("Draft", " "):
            raise dialog(
                f"You cannot change Sales Invoice {header.data['number']} because it has been posted."
            )

    # --- bound actions -------------------------------------------------------------------------------------------
    def act(self, company: Company, entity: EntityType, row: Row, action: str) -> None:
        """Microsoft.NAV.{action} on a document."""
        if action not in entity.actions:
            raise BcError(
                400, "BadRequest_MethodNotImplemented", f"Entity does not support bound action '{action}'."
            )
        if action == "post":
            self._post_invoice(company, entity, row)
        elif action == "shipAndInvoice":
            self._ship_and_invoice(company, entity, row)

    def _post_invoice(self, company: Company, entity: EntityType, row: Row) -> None:
        if row.data["status"] != "Draft":
            raise dialog(f"Sales Invoice {row.data['number']} has already been posted.")
        lines = self.lines(company, entity, row)
        if not any(float(line.data["quantity"]) for line in lines):
            raise dialog("There is nothing to post.")
        # Posting gives the invoice its posted number; the id stays, as the API keeps showing it [RES salesInvoice].
        number = self._store.next_series(company, "postedSalesInvoices", "PS-INV", start=103000)
        self._take_inventory(company, lines)
        total = float(row.data["totalAmountIncludingTax"])
        row.data.update(
            {"status": "Open", "number": number, "remainingAmount": total, "postingDate": self._store.today()}
        )
        self._store.touch(row, company, entity.set_name)
        customer = self._store.get(company, "customers", str(row.data["customerId"]))
        if customer is not None:
            customer.data["balanceDue"] = round(float(customer.data["balanceDue"]) + total, 2)
            self._store.touch(customer, company, "customers")

    def _ship_and_invoice(self, company: Company, entity: EntityType, row: Row) -> None:
        lines = self.lines(company, entity, row)
        if not any(float(line.data["quantity"]) for line in lines):
            raise dialog("There is nothing to post.")
        invoice_values = {
            k: v
            for k, v in row.data.items()
            if k in ENTITY_TYPES["salesInvoices"].fields
            and k not in ("id", "number", "status", "lastModifiedDateTime")
        }
        invoice_values.update(
            {"invoiceDate": self._store.today(), "orderId": row.data["id"], "orderNumber": row.data["number"]}
        )
        invoices, invoice_lines = ENTITY_TYPES["salesInvoices"], ENTITY_TYPES["salesInvoiceLines"]
        invoice = self._store.insert(company, invoices, invoice_values)
        for line in lines:
            values = {
                k: v
                for k, v in line.data.items()
                if k in invoice_lines.fields and k not in ("id", "documentId", "lastModifiedDateTime")
            }
            self._add_line(company, invoice_lines, invoice, values, None, recalc=False)
        self._recalculate(company, invoices, invoice)
        self._post_invoice(company, invoices, invoice)
        for line in lines:
            self._store.delete(company, "salesOrderLines", str(line.data["id"]))
        self._store.delete(company, "salesOrders", str(row.data["id"]))

    def _take_inventory(self, company: Company, lines: list[Row]) -> None:
        for line in lines:
            item = (
                self._store.get(company, "items", str(line.data["itemId"]))
                if line.data["lineType"] == "Item"
                else None
            )
            if item is not None and item.data["type"] == "Inventory":
                item.data["inventory"] = float(item.data["inventory"]) - float(line.data["quantity"])
                self._store.touch(item, company, "items")


def seed_documents(
    store: BcStore, documents: Documents, company: Company, config: SandboxConfig, rng: random.Random
) -> None:
    """Seed sales orders and invoices through the same rules as the API uses."""
    customers = sorted(store.table(company, "customers").values(), key=lambda r: str(r.data["number"]))
    items = sorted(store.table(company, "items").values(), key=lambda r: str(r.data["number"]))
    base = date.fromisoformat(store.today())
    for set_name, count in (
        ("salesOrders", config.bc_seed_sales_orders),
        ("salesInvoices", config.bc_seed_sales_invoices),
    ):
        entity = ENTITY_TYPES[set_name]
        for index in range(count):
            lines = [
                {"lineType": "Item", "itemId": rng.choice(items).data["id"], "quantity": rng.randint(1, 10)}
                for _ in range(rng.randint(1, 4))
            ]
            day = (base - timedelta(days=index)).isoformat()
            header: dict[str, JsonValue] = {
                "id": guid(rng),
                "customerId": rng.choice(customers).data["id"],
                ("orderDate" if set_name == "salesOrders" else "invoiceDate"): day,
                entity.nav or "": lines,
            }
            documents.create(company, entity, header)
