"""Capacity forecasting: months-ahead demand per site, accelerator class and queue.

One module per job: `history` (the hourly series and their CSV form), `prometheus`
(the same series from a Prometheus), `series` (daily demand and its hierarchy),
`models` (statistical models and baselines), `reconcile`, `calibrate` (intervals from
backtest residuals), `backtest` (rolling-origin accuracy), `capacity` (capacity, SKUs,
when to order), `pipeline` (the whole forecast), `report` and `plots` (output), `bench`.
No Kubernetes here: forecasting reads exported metrics only.
"""
