"""The records `examples/jobs/` name by id: seeded with fixed ids so that every example job succeeds on `make dev`.

The seeded demo company draws its ids from the seeded generator, so they change whenever the seeding does; an
example that reads, changes, posts or deletes a record needs an id that does not. These few records are added after
the generated data (the generator is not consulted, so every other id and value stays as it was). In a real BC
environment the ids are the environment's own: read them with a `list` job first.
"""

from __future__ import annotations

from sandbox.bc.documents import Documents
from sandbox.bc.schema import ENTITY_TYPES, JsonValue
from sandbox.bc.store import BcStore, Company

CUSTOMER_ID = "1c0a7c5e-1000-4000-8000-00000000c100"  # customer C-1000 (get, update, batch, orders)
VENDOR_ID = "1c0a7c5e-1000-4000-8000-00000000a009"  # vendor V-9 (delete)
ITEM_ID = "1c0a7c5e-1000-4000-8000-00000000e100"  # item 1000-E (the batch's update)
SALES_ORDER_ID = "1c0a7c5e-1000-4000-8000-0000000050a1"  # sales order S-ORD-EX1 (a line added under it)
SALES_INVOICE_ID = "1c0a7c5e-1000-4000-8000-0000000051b1"  # draft sales invoice S-INV-EX1 (posted)


def seed_examples(store: BcStore, documents: Documents, company: Company) -> None:
    """Add the example records; documents go through the business rules, as the API's would."""
    store.insert(
        company,
        ENTITY_TYPES["customers"],
        {"number": "C-1000", "displayName": "Trey Research", "city": "Seattle", "country": "US"},
        row_id=CUSTOMER_ID,
    )
    store.insert(
        company, ENTITY_TYPES["vendors"], {"number": "V-9", "displayName": "Old Supplies"}, row_id=VENDOR_ID
    )
    store.insert(
        company,
        ENTITY_TYPES["items"],
        {
            "number": "1000-E",
            "displayName": "Example chair",
            "unitPrice": 10.0,
            "unitCost": 6.0,
            "inventory": 50.0,
        },
        row_id=ITEM_ID,
    )
    for set_name, row_id, number in (
        ("salesOrders", SALES_ORDER_ID, "S-ORD-EX1"),
        ("salesInvoices", SALES_INVOICE_ID, "S-INV-EX1"),
    ):
        line: dict[str, JsonValue] = {"lineType": "Item", "itemId": ITEM_ID, "quantity": 1}
        entity = ENTITY_TYPES[set_name]
        header: dict[str, JsonValue] = {"id": row_id, "number": number, "customerId": CUSTOMER_ID}
        header[entity.nav or ""] = [line]
        documents.create(company, entity, header)
