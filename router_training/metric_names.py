"""Names of the quality metrics a router reports, and the ensemble gate's default target
(no imports: the CLI reads it at start-up)."""

# In the order model cards and `spillway router train/eval` show them.
QUALITY_METRICS = (
    "accuracy",
    "macro_f1",
    "in_scope_accuracy",
    "oos_recall",
    "abstain_rate",
    "accepted_accuracy",
    "ece",
    "auroc",
)

# The ensemble gate target `router train --kind ensemble` and `router ensemble` use unless told
# otherwise (router_training.gate; chosen in docs/router.md).
DEFAULT_GATE_TARGET = "agreement>=0.995"
