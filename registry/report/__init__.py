"""The auditor's report: `gather` (through the Registry interface) and `html` (one page)."""
