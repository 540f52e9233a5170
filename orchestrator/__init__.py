"""Spillway's orchestrator: the only package that knows Ray Serve and HTTP."""
