"""Executing a plan against SAP B1: intents, bounded concurrency, retries, lookups, results."""

from engine.load.classify import ErrorClass, classify
from engine.load.executor import Journal, Loader, MemoryJournal, RetryPolicy, RunAborted
from engine.load.model import Action, Attempt, LoadStats, Operation, Outcome, Status, Target
from engine.load.port import B1Port

__all__ = [
    "Action",
    "Attempt",
    "B1Port",
    "ErrorClass",
    "Journal",
    "LoadStats",
    "Loader",
    "MemoryJournal",
    "Operation",
    "Outcome",
    "RetryPolicy",
    "RunAborted",
    "Status",
    "Target",
    "classify",
]
