"""Operators' view: the metric catalogue, the Grafana dashboard, the local Prometheus and trace
receiver of `outpost up --monitor`, and the dashboard picture for the docs."""
