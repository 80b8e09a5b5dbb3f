"""The local world: Azurite, the sandbox process, devhost instances, counting storage proxies, the BC reader,
infra's app settings resolved locally, and `make dev` (`python -m localworld.dev`); what the demo, bench/, soak/,
testkit/ and the integration tests run against."""
