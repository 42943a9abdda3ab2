"""The operator's tools around the component: load events (produce), watch the metrics topic (monitor,
its live view and learning-curve plot), compare with river (check-river), and the demo."""
