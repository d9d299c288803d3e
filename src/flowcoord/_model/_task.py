"""Tasks: ``async def`` functions (or classes) with inputs inferred from their signature."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, overload

from ..errors import InvalidTaskError

if TYPE_CHECKING:
    from ._retry import Retry

__all__ = ["FunctionTask", "Provides", "Task", "task"]

Provides: TypeAlias = "str | tuple[str, ...] | list[str] | set[str] | frozenset[str] | None"
Rebind: TypeAlias = "Mapping[str, str] | Sequence[str] | None"
AsyncFn: TypeAlias = Callable[..., Awaitable[Any]]

#: Names a revert may ask for besides the task's own inputs.
REVERT_EXTRAS = frozenset({"result", "flow_failures"})


class Task:
    """A unit of work. Subclass it and define ``async def execute(self, ...)`` (and optionally
    ``async def revert(self, ..., result, flow_failures)``), or use the :func:`task` decorator.

    Inputs are the parameters of ``execute``: one without a default is required, one with a
    default is optional. ``rebind`` maps a parameter to another store name (a mapping, or a
    sequence matched to the parameters in order); ``inject`` gives parameters constant values.
    ``provides`` names the result: one name, a tuple (the result is unpacked positionally) or
    a set (the result is a mapping and each name is one of its keys).
    """

    provides: ClassVar[Provides] = None
    provided: tuple[str, ...]
    default_name: ClassVar[str | None] = None

    def __init__(
        self,
        name: str | None = None,
        *,
        provides: Provides = None,
        rebind: Rebind = None,
        inject: Mapping[str, Any] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> None:
        self.name = name or self.default_name or type(self).__name__
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise InvalidTaskError(f"task name {self.name!r} must be a non-empty str without '/'")
        self.retry = retry
        if timeout is not None and not timeout > 0:
            raise InvalidTaskError(
                f"task {self.name!r}: timeout must be positive, got {timeout!r}", tasks=[self.name]
            )
        self.timeout = timeout
        self.inject: dict[str, Any] = dict(inject or {})
        self._rebind_spec = rebind
        prov = provides if provides is not None else type(self).provides
        self.provides_kind, self.provided = _parse_provides(self.name, prov)
        self._bind(self._execute_fn(), rebind)

    # -- to override ---------------------------------------------------------------------------

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def revert(self, *args: Any, **kwargs: Any) -> Any:
        return None

    # -- introspection -------------------------------------------------------------------------

    def _execute_fn(self) -> AsyncFn:
        return self.execute

    def _revert_fn(self) -> AsyncFn | None:
        if type(self).revert is Task.revert:
            return None
        return self.revert

    @property
    def has_revert(self) -> bool:
        return self._revert_fn() is not None

    def _bind(self, fn: AsyncFn, rebind: Rebind) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidTaskError(
                f"task {self.name!r}: {getattr(fn, '__qualname__', fn)!r} must be an async def",
                tasks=[self.name],
            )
        params = [p for p in inspect.signature(fn).parameters.values()]
        args: list[inspect.Parameter] = []
        for p in params:
            if p.kind is p.VAR_POSITIONAL or p.kind is p.POSITIONAL_ONLY:
                raise InvalidTaskError(
                    f"task {self.name!r}: parameter {p.name!r} must be passable by keyword",
                    tasks=[self.name],
                    hint="inputs are passed by name from the flow's store",
                )
            if p.kind is not p.VAR_KEYWORD:
                args.append(p)
        arg_names = [p.name for p in args]
        mapping = _parse_rebind(self.name, rebind, arg_names)
        for key in self.inject:
            if key not in arg_names:
                raise InvalidTaskError(
                    f"task {self.name!r}: inject names {key!r}, which is not a parameter",
                    tasks=[self.name],
                )
        required: list[tuple[str, str]] = []
        optional: list[tuple[str, str]] = []
        for p in args:
            if p.name in self.inject:
                continue
            pair = (p.name, mapping.get(p.name, p.name))
            (optional if p.default is not p.empty else required).append(pair)
        #: (parameter, store name) pairs
        self.required_args: tuple[tuple[str, str], ...] = tuple(required)
        self.optional_args: tuple[tuple[str, str], ...] = tuple(optional)
        self.requires: tuple[str, ...] = tuple(s for _, s in required)
        self.optional: tuple[str, ...] = tuple(s for _, s in optional)
        self._arg_names = frozenset(arg_names)
        revert = self._revert_fn()
        self._revert_params: frozenset[str] | None = None  # None: accepts **kwargs
        if revert is not None:
            if not inspect.iscoroutinefunction(revert):
                raise InvalidTaskError(
                    f"task {self.name!r}: its revert must be an async def", tasks=[self.name]
                )
            rparams = inspect.signature(revert).parameters.values()
            if not any(p.kind is p.VAR_KEYWORD for p in rparams):
                names = frozenset(p.name for p in rparams if p.kind is not p.VAR_POSITIONAL)
                unknown = names - self._arg_names - REVERT_EXTRAS
                if unknown:
                    raise InvalidTaskError(
                        f"task {self.name!r}: revert parameters {sorted(unknown)} are neither "
                        "inputs of the task nor 'result'/'flow_failures'",
                        tasks=[self.name],
                    )
                self._revert_params = names

    def revert_kwargs(self, inputs: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments the revert is called with."""
        merged = {**inputs, **extras}
        if self._revert_params is None:
            return merged
        return {k: v for k, v in merged.items() if k in self._revert_params}

    def copy(self, name: str) -> Task:
        """A copy of this task under another name (a name is unique within a flow tree)."""
        import copy

        clone = copy.copy(self)
        clone.name = name
        return clone

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"<{kind} {self.name!r} requires={self.requires} provides={self.provided}>"


class FunctionTask(Task):
    """A task made from an ``async def`` by :func:`task`."""

    def __init__(
        self,
        fn: AsyncFn,
        name: str | None = None,
        *,
        provides: Provides = None,
        rebind: Rebind = None,
        inject: Mapping[str, Any] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        revert: AsyncFn | None = None,
    ) -> None:
        self.fn = fn
        self.revert_fn = revert
        super().__init__(
            name or getattr(fn, "__name__", None),
            provides=provides,
            rebind=rebind,
            inject=inject,
            retry=retry,
            timeout=timeout,
        )
        self.__doc__ = fn.__doc__

    def _execute_fn(self) -> AsyncFn:
        return self.fn

    def _revert_fn(self) -> AsyncFn | None:
        return self.revert_fn

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self.fn(*args, **kwargs)

    async def revert(self, *args: Any, **kwargs: Any) -> Any:
        if self.revert_fn is None:
            return None
        return await self.revert_fn(*args, **kwargs)

    def on_revert(self, fn: AsyncFn) -> AsyncFn:
        """Decorator: make ``fn`` this task's revert. Returns ``fn`` unchanged."""
        self.revert_fn = fn
        self._bind(self.fn, self._rebind_spec)
        return fn

    def with_options(
        self,
        name: str | None = None,
        *,
        provides: Provides = None,
        rebind: Rebind = None,
        inject: Mapping[str, Any] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> FunctionTask:
        """A new task running the same function with other options (e.g. another name)."""
        return FunctionTask(
            self.fn,
            name or self.name,
            provides=provides if provides is not None else _provides_spec(self),
            rebind=rebind if rebind is not None else self._rebind_spec,
            inject=inject if inject is not None else self.inject,
            retry=retry if retry is not None else self.retry,
            timeout=timeout if timeout is not None else self.timeout,
            revert=self.revert_fn,
        )

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (handy in tests)."""
        return await self.fn(*args, **kwargs)


@overload
def task(fn: AsyncFn, /) -> FunctionTask: ...


@overload
def task(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    provides: Provides = None,
    rebind: Rebind = None,
    inject: Mapping[str, Any] | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    revert: AsyncFn | None = None,
) -> Callable[[AsyncFn], FunctionTask]: ...


def task(
    fn: AsyncFn | None = None,
    /,
    *,
    name: str | None = None,
    provides: Provides = None,
    rebind: Rebind = None,
    inject: Mapping[str, Any] | None = None,
    retry: Retry | None = None,
    timeout: float | None = None,
    revert: AsyncFn | None = None,
) -> FunctionTask | Callable[[AsyncFn], FunctionTask]:
    """Make an ``async def`` a task: ``@task`` or ``@task(provides="vm", retry=Times(3))``.

    Give it a revert with ``revert=`` or with the ``@the_task.on_revert`` decorator; the revert
    receives the task's inputs plus, if it asks for them, ``result`` (the task's result, or its
    :class:`~flowcoord.Failure`) and ``flow_failures`` (task name → Failure).
    """

    def make(f: AsyncFn) -> FunctionTask:
        return FunctionTask(
            f,
            name,
            provides=provides,
            rebind=rebind,
            inject=inject,
            retry=retry,
            timeout=timeout,
            revert=revert,
        )

    return make(fn) if fn is not None else make


def _parse_provides(name: str, spec: Provides) -> tuple[str, tuple[str, ...]]:
    if spec is None:
        return "none", ()
    if isinstance(spec, str):
        return "single", (spec,)
    if isinstance(spec, (tuple, list)):
        kind, items = "tuple", list(spec)
    elif isinstance(spec, (set, frozenset)):
        kind, items = "set", sorted(spec)
    else:
        raise InvalidTaskError(
            f"task {name!r}: provides must be a str, tuple or set of str, got {spec!r}",
            tasks=[name],
        )
    if not all(isinstance(i, str) and i for i in items) or len(set(items)) != len(items):
        raise InvalidTaskError(
            f"task {name!r}: provides must hold distinct non-empty names, got {spec!r}",
            tasks=[name],
        )
    return kind, tuple(items)


def _provides_spec(t: Task) -> Provides:
    if t.provides_kind == "single":
        return t.provided[0]
    if t.provides_kind == "tuple":
        return tuple(t.provided)
    if t.provides_kind == "set":
        return set(t.provided)
    return None


def _parse_rebind(name: str, rebind: Rebind, arg_names: Iterable[str]) -> dict[str, str]:
    args = list(arg_names)
    if rebind is None:
        return {}
    if isinstance(rebind, Mapping):
        mapping = dict(rebind)
    elif isinstance(rebind, (list, tuple)):
        if len(rebind) > len(args):
            raise InvalidTaskError(
                f"task {name!r}: rebind has {len(rebind)} names for {len(args)} parameters",
                tasks=[name],
            )
        mapping = dict(zip(args, rebind, strict=False))
    else:
        raise InvalidTaskError(
            f"task {name!r}: rebind must be a mapping or a sequence, got {rebind!r}", tasks=[name]
        )
    for arg, target in mapping.items():
        if arg not in args:
            raise InvalidTaskError(
                f"task {name!r}: rebind names {arg!r}, which is not a parameter "
                f"(parameters: {args})",
                tasks=[name],
            )
        if not isinstance(target, str) or not target:
            raise InvalidTaskError(
                f"task {name!r}: rebind target for {arg!r} must be a non-empty str", tasks=[name]
            )
    return mapping
