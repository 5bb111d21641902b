"""Task adapters, found by name; the model's architecture picks one unless ``--task`` says otherwise."""

from __future__ import annotations

from typing import Any

from attnviz.config import TASK_NAMES
from attnviz.model.tasks.base import TaskAdapter
from attnviz.model.tasks.classify import ClassifyTask
from attnviz.model.tasks.encode import EncodeTask
from attnviz.model.tasks.lm import LanguageModelTask
from attnviz.model.tasks.qa import QuestionAnsweringTask
from attnviz.model.tasks.seq2seq import Seq2SeqTask
from attnviz.registry import Registry

TASKS: Registry[TaskAdapter] = Registry("task")

_ADAPTERS: dict[str, TaskAdapter] = {
    task.name: task
    for task in (ClassifyTask(), QuestionAnsweringTask(), Seq2SeqTask(), LanguageModelTask(), EncodeTask())
}
assert set(_ADAPTERS) == set(TASK_NAMES), "config.TASK_NAMES must name every task adapter"
for _name in TASK_NAMES:  # in their order, which is detection's
    TASKS.register(_name)(_ADAPTERS[_name])


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
