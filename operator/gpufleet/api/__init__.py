"""The API: pydantic models of the CRDs (one subpackage per version), quantities, regions, and CRD generation."""
