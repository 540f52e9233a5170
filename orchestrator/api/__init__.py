"""The HTTP API of an ingress replica: the FastAPI app and its routes, OpenAI's wire shapes,
errors as OpenAI JSON, the OpenAPI document, and the replica's own HTTP server. It translates
HTTP to calls on the parts the builder assembled (`parts.ReplicaParts`) and results to HTTP.

(Named `api`, not `http`: a package named `http` shadows the standard library's `http` for any
tool run with this folder on its path.)"""
