"""The operators that act on results: tagging, corrections and their undo,
review verdicts, audits, the curated export and the Dupes review loop."""
