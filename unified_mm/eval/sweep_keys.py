"""The sampling keys a sweep setting may hold (`umm eval --sweep`): the
transformer's, then the renderer's. The benchmark splits a setting by them
(eval/shapes_benchmark.py) and the sweep report keeps them out of its metrics
(eval/sweep_report.py)."""

AR_KEYS = ("cfg_scale", "temperature", "top_k", "plan_cfg", "plan_temperature", "plan_gap",
           "plan_min_box", "plan_fit", "max_objects")
RENDER_KEYS = ("steps", "chunks", "render_cfg", "method", "start")
