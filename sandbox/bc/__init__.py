"""Business Central API v2.0 stand-in: entities, OData queries, paging, ETags, $batch, per-identity limits, faults."""
