"""The path of one query inside the ingress replica: admission (keys, tenants, limits), target
resolution, routing, the cascade call, fallbacks, streaming, and the `QueryTrace` that becomes
the response and the ledger row. Knows no HTTP and no Ray: backends are reached through
`orchestrator.backends.seam.Backends`."""
