"""Task records as data: DataFrames, summaries and statistics shared by the simulator, the live cluster
and the apps (imports only sched_lab.core, numpy and pandas)."""

from .stats import confidence_halfwidth, ks_distance, response_times
from .summary import Summary, final_records, summarize, to_dataframe

__all__ = ["Summary", "summarize", "to_dataframe", "final_records", "confidence_halfwidth", "ks_distance",
           "response_times"]
