"""How to reach one model on an OpenAI-compatible server (``RemoteLLMConfig``).

No HTTP client here: the serve config validates it without the backend. The backend that uses
it is ``orchestrator.backends.remote.RemoteLLMDeployment``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["RemoteLLMConfig"]


class RemoteLLMConfig(BaseModel):
    """How to reach one model on an OpenAI-compatible server. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        description="The server's OpenAI API root, ending in /v1, e.g. http://vllm-small:8000/v1."
    )
    served_name: str = Field(min_length=1, description="Remote model name of the base model.")
    adapters: list[str] = Field(
        default_factory=list,
        description="Adapters the server serves as model names (vLLM: --lora-modules NAME=PATH).",
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the server's API key; None: no key."
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wait for the server's next bytes (a whole answer "
        "when not streaming), in seconds.",
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="Connection timeout, in seconds.")
    max_retries: int = Field(
        2, ge=0, description="Retries after connect errors, 429 and 5xx (streams: before data)."
    )
    retry_backoff_s: float = Field(
        0.5, ge=0, description="First retry delay in seconds; doubles per retry, with jitter."
    )
    max_connections: int = Field(64, ge=1, description="Open connections to the server, max.")
    max_model_len: int | None = Field(
        None, ge=16, description="The server's context length, for describe(); None: unknown."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {url!r} must start with http:// or https://")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _names(self) -> RemoteLLMConfig:
        if any(not name.strip() for name in self.adapters):
            raise ValueError("adapter names must be non-empty")
        if len(set(self.adapters)) != len(self.adapters):
            raise ValueError("adapter names must be unique")
        if self.served_name in self.adapters:
            raise ValueError(f"adapter {self.served_name!r} equals served_name: rename it")
        return self
