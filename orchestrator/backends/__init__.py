"""The backends Spillway calls: the router deployment, the vLLM engine deployment (LoRA,
log-probabilities), a remote OpenAI-compatible endpoint, and the vLLM patch; `seam.Backends`
is how the query path reaches them."""
