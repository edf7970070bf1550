"""The Inspect AI model provider ``fluidsim``: a simulated examinee of known ability.

Importing this module registers the provider (``@modelapi``); the package's entry
point (``[project.entry-points.inspect_ai]``) makes Inspect import it, so
``inspect eval TASK --model fluidsim/theta=0.5 -M bank=BANK.nc`` finds it as well as
:func:`fluid_bayes.harness.inspect.run` does. To Inspect it is a real model: it gets the
rendered prompt and answers with text that the task's scorer grades.

Model
-----
The model name holds ``theta`` and ``seed`` (``fluidsim/theta=0.5:seed=7``; ``:`` or
``;`` separate them, since Inspect splits model strings at commas); any other name
(``fluidsim/sim``) takes them from the model arguments. Model arguments:

``bank`` (required)
    Path of the item bank whose items the model answers; its document map
    (:func:`~fluid_bayes.harness.documents.bank_documents`) says which item a sample of
    a task is.
``theta``, ``seed``
    Ability (default 0) and seed (default 0) of the
    :class:`~fluid_bayes.harness.simulated.SimulatedAbility` that decides each answer.
``fail_after``
    Raise an error for every document after the first ``fail_after`` this model
    instance answered (to test a harness failure mid-run).

A sample of a multiple-choice task gets ``ANSWER: <letter>``: the right letter when
:meth:`SimulatedAbility.correct` says so, else a wrong letter chosen by a hash of the
seed and the item (the same every time). Other tasks get the target text or nothing.

Which sample is being answered is read from Inspect's per-sample context
(``inspect_ai.solver._task_state.sample_state`` and ``inspect_ai.log._samples.
sample_active``, private functions of inspect-ai 0.3.285; the extra pins that version).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from inspect_ai.model import ChatMessage, GenerateConfig, ModelAPI, ModelOutput, modelapi
from inspect_ai.tool import ToolChoice, ToolInfo

__all__ = ["PROVIDER", "FluidSimAPI", "parse_model_name", "simulated_model"]

#: The provider's name: models are ``fluidsim/<name>``.
PROVIDER = "fluidsim"
_NAME_KEYS = ("theta", "seed")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# (bank path, mtime, theta, seed) -> (SimulatedAbility, DocumentMap): one per process, so
# that SimulatedAbility.asked counts every document asked of that model in this process
_MODELS: dict[tuple[str, int, float, int], tuple[Any, Any]] = {}


def parse_model_name(name: str) -> dict[str, str]:
    """The ``key=value`` parts of a model name (``theta=0.5:seed=7`` -> theta, seed).

    Returns
    -------
    dict
        ``{"theta": "0.5", "seed": "7"}``; ``{}`` for a plain name such as ``sim``.

    Raises
    ------
    ValueError
        A key other than ``theta`` and ``seed``.
    """
    out: dict[str, str] = {}
    for part in re.split(r"[:;]", name):
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            if key not in _NAME_KEYS:
                raise ValueError(f"fluidsim: the model name takes theta and seed, not {key!r}")
            out[key] = value
    return out


def simulated_model(bank: str | Path, theta: float = 0.0, seed: int = 0):
    """The process's simulated model of ``(bank file, theta, seed)`` and its document map.

    Every Inspect model instance of the same bank, ability and seed shares one
    :class:`~fluid_bayes.harness.simulated.SimulatedAbility`, so its ``asked`` counts
    the documents of every evaluation in this process.

    Returns
    -------
    (SimulatedAbility, DocumentMap)

    Raises
    ------
    ValueError
        The bank file does not exist or cannot be read as a bank with documents.
    """
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.exceptions import FluidBayesError
    from fluid_bayes.harness.documents import bank_documents
    from fluid_bayes.harness.simulated import SimulatedAbility

    path = Path(bank).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"fluidsim: no bank file {bank}")
    key = (str(path), path.stat().st_mtime_ns, float(theta), int(seed))
    if key not in _MODELS:
        try:
            loaded = ItemBank.load(path)
            _MODELS[key] = (SimulatedAbility(loaded, theta, seed), bank_documents(loaded))
        except FluidBayesError as exc:
            raise ValueError(f"fluidsim: {exc}") from None
    return _MODELS[key]


def _number(what: str, value: Any, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"fluidsim: {what} must be a number, got {value!r}") from None


@modelapi(name=PROVIDER)
class FluidSimAPI(ModelAPI):
    """Inspect model provider answering like a model of ability ``theta``.

    Parameters
    ----------
    model_name : str
        ``theta=X:seed=N`` or any name (then ``theta`` and ``seed`` are arguments).
    bank : str
        Path of the item bank (with a document map).
    theta : float, optional
        Ability on the bank's scale (default 0, or the name's).
    seed : int, optional
        Seed of the answers (default 0, or the name's).
    fail_after : int, optional
        Fail every document after this many answered.
    """

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - Inspect's signature
        bank: str | None = None,
        theta: float | None = None,
        seed: int | None = None,
        fail_after: int | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        if model_args:
            raise ValueError(
                f"fluidsim: unknown model argument(s) {sorted(model_args)} "
                "(it takes bank, theta, seed, fail_after)"
            )
        named = parse_model_name(model_name)
        for key, value in (("theta", theta), ("seed", seed)):
            if key in named and value is not None and str(value) != named[key]:
                raise ValueError(f"fluidsim: {key} is {named[key]} in the model name but "
                                 f"{value} in the model arguments")  # fmt: skip
        if bank is None:
            raise ValueError("fluidsim: model argument bank=PATH (the item bank) is required")
        self.theta = _number("theta", theta if theta is not None else named.get("theta", 0), float)
        self.seed = _number("seed", seed if seed is not None else named.get("seed", 0), int)
        self.fail_after = None if fail_after is None else _number("fail_after", fail_after, int)
        self.simulated, self.documents = simulated_model(bank, self.theta, self.seed)
        self.answered = 0

    def max_connections(self) -> int:
        """Samples answered at once (the model is instant)."""
        return 64

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        """Answer the running sample (right with the 2PL probability of its item)."""
        task, sample_id, target, n_choices = _running_sample()
        item = self.documents.item_of(task, sample_id)
        if item is None and "/" in task:  # a task registered by a package: <package>/<name>
            item = self.documents.item_of(task.rsplit("/", 1)[1], sample_id)
        if item is None:
            raise RuntimeError(
                f"fluidsim: sample {sample_id!r} of task {task!r} is no item of the bank"
            )
        if self.fail_after is not None and self.answered >= self.fail_after:
            raise RuntimeError(
                f"fluidsim: simulated failure after {self.fail_after} documents "
                f"(sample {sample_id!r} of task {task!r})"
            )
        self.answered += 1
        right = self.simulated.correct(item)
        if n_choices:
            letters = _LETTERS[:n_choices]
            wrong = [x for x in letters if x != target] or [target]
            h = hashlib.sha256(f"{self.seed}\0{item}\0wrong".encode()).digest()
            letter = target if right else wrong[int.from_bytes(h[:8], "little") % len(wrong)]
            content = f"ANSWER: {letter}"
        else:
            content = target if right else ""
        return ModelOutput.from_content(model=self.model_name, content=content)


def _running_sample() -> tuple[str, str | int, str, int]:
    """``(task name, sample id, target text, number of choices)`` of the running sample."""
    from inspect_ai.log._samples import sample_active
    from inspect_ai.solver._task_state import sample_state

    active = sample_active()
    state = sample_state()
    if active is None or state is None:
        raise RuntimeError("fluidsim: generate() was called outside a running sample")
    return active.task, state.sample_id, state.target.text, len(state.choices)
