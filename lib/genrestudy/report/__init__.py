"""Evaluation and reports: Table 7, Table 8, findings, the backbone comparison, figures."""
