"""Pure cascade logic: confidence, policy, pricing, calibration, offline evaluation. No I/O."""
