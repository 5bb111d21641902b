"""Task adapters, found by name; the model's architecture picks one unless ``--task`` says otherwise."""

from __future__ import annotations

from typing import Any

from attnviz.registry import Registry
from attnviz.tasks.base import TaskAdapter
from attnviz.tasks.classify import ClassifyTask
from attnviz.tasks.encode import EncodeTask
from attnviz.tasks.lm import LanguageModelTask
from attnviz.tasks.qa import QuestionAnsweringTask
from attnviz.tasks.seq2seq import Seq2SeqTask

TASKS: Registry[TaskAdapter] = Registry("task")

# Order matters for detection: the most specific heads first, plain encoders last.
for _task in (ClassifyTask(), QuestionAnsweringTask(), Seq2SeqTask(), LanguageModelTask(), EncodeTask()):
    TASKS.register(_task.name)(_task)


def get_task(name: str) -> TaskAdapter:
    return TASKS.get(name)


def list_tasks() -> list[str]:
    return TASKS.names()


def detect_task(config: Any) -> str:
    """Pick the task from ``config.architectures`` (first match wins); plain encoders get ``encode``."""
    architectures = list(getattr(config, "architectures", None) or [])
    for arch in architectures:
        for name in TASKS.names():
            if TASKS.get(name).matches(arch, config):
                return name
    return "encode"


__all__ = ["TASKS", "TaskAdapter", "detect_task", "get_task", "list_tasks"]
