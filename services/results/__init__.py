"""The results service: single writer of the database; jobs, events, sweep results, datasets."""
