"""Reports: report.json is the truth; report.md (and report.html) are views of it."""
