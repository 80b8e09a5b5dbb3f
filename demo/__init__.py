"""The demo (`make demo`, `python -m demo`): the product's main job end to end on the local world, under faults,
checked against BC; nothing else imports it."""
