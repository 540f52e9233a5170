"""Names of the quality metrics a router reports (no imports: the CLI reads it at start-up)."""

# In the order model cards and `spillway router train/eval` show them.
QUALITY_METRICS = (
    "accuracy",
    "macro_f1",
    "in_scope_accuracy",
    "oos_recall",
    "abstain_rate",
    "accepted_accuracy",
    "ece",
)
