"""What a person (or Prometheus) looks at: outcome (one record per request, counted once),
metrics (`/metrics`), stats (recent activity), health (`/health`), dashboard (`/dashboard`).
"""
