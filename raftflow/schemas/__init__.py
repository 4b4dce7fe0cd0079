"""Pydantic models for every API body and job spec, defined once and imported by both sides."""
