"""Reading scans and writing/reading the CSV tables."""
