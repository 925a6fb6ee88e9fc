"""What a run shows and keeps: terminal tables, the JSON document, the HTML report, baselines, live progress."""
