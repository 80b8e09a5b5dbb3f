"""The Functions host's own checks on the function metadata the Python worker sends it, as pure functions.

Input is what the worker indexes (azure-functions' `app.get_functions()`, each function's `get_function_json()`:
its name and raw bindings); output is the host's refusals, one per function in error. devhost applies them at
start (devhost.catalog.build_catalog) and tests/unit/core/test_worker_indexing.py applies them to function_app.py,
so both share this one implementation. A function in error is left out; the host and the other functions keep
running ("The 'x' function is in error: ...").

Sources (github.com/Azure/azure-functions-host @89dc438d, 4.1037, unless said otherwise):
- src/WebJobs.Script/Host/WorkerFunctionMetadataProvider.cs ValidateMetadata / ValidateBindings: every function
  first (name, each binding, unique binding names, a trigger);
- src/WebJobs.Script/Utility.cs ValidateName, ValidateBinding; the binding-name regex as PR
  Azure/azure-functions-host#10764 (host >= 4.1038) made it: snake_case allowed, `__` not;
- src/WebJobs.Script/Host/ScriptHost.cs ValidateFunction / ValidateHttpFunction / HttpRoutesConflict: then, in
  order, each HTTP function that passed: reserved routes, a route and methods another function already has,
  a duplicate name. The later function of a conflicting pair is the one in error; the earlier keeps its route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.functions.decorators.function_app import Function

# Utility.FunctionNameValidationRegex: RegexOptions.IgnoreCase, so "Health" passes and "HOST" is refused too.
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$(?<!^host$)", re.IGNORECASE)
# Utility.BindingNameValidationRegex after PR #10764 (case-sensitive; $return is the function's return value).
_BINDING_NAME = re.compile(r"^(?!.*__)([a-zA-Z_][a-zA-Z0-9_]{0,127}|\$return)$")
# ScriptHost.ValidateHttpFunction: the host's own /admin and /runtime APIs; a prefix test, so "administration"
# and "runtimes/x" are refused too.
_RESERVED_ROUTE_PREFIXES = ("admin", "runtime")


@dataclass(frozen=True, slots=True)
class FunctionMetadata:
    """One function as the worker reports it to the host: its name and raw bindings (parsed JSON)."""

    name: str
    bindings: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class HostRefusal:
    """A function the host puts in error, and the host's reason."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    """An HTTP trigger's route (the function's name when unset) and methods."""

    route: str
    methods: frozenset[str]  # empty: every method


def metadata_of(functions: Iterable[Function]) -> tuple[FunctionMetadata, ...]:
    """Each function's name and bindings from get_function_json(), as the worker builds its raw_bindings."""
    found = []
    for function in functions:
        document = json.loads(function.get_function_json())
        found.append(
            FunctionMetadata(function.get_function_name() or "", tuple(document.get("bindings", ())))
        )
    return tuple(found)


def _binding_refusal(binding: Mapping[str, Any]) -> str | None:
    name = binding.get("name")
    if not isinstance(name, str) or not _BINDING_NAME.match(name):
        return f"The binding name {name} is invalid. Please assign a valid name to the binding."
    if name == "$return" and str(binding.get("direction", "")).lower() != "out":
        return "$return bindings must specify a direction of 'out'."
    return None


def _is_trigger(binding: Mapping[str, Any]) -> bool:
    # BindingMetadata.IsTrigger: the type ends with "trigger" (ignoring case); InputBindings: direction in.
    kind, direction = str(binding.get("type", "")), str(binding.get("direction", "in"))
    return kind.lower().endswith("trigger") and direction.lower() == "in"


def metadata_refusal(function: FunctionMetadata) -> str | None:
    """WorkerFunctionMetadataProvider.ValidateMetadata for one function: None when the host accepts it."""
    if not _FUNCTION_NAME.match(function.name):
        return f"'{function.name}' is not a valid function name."
    seen: set[str] = set()
    for binding in function.bindings:
        refusal = _binding_refusal(binding)
        if refusal is not None:
            return refusal
        name = str(binding["name"])
        if name.lower() in seen:  # a HashSet with StringComparer.OrdinalIgnoreCase
            return f"Multiple bindings with name '{name}' discovered. Binding names must be unique."
        seen.add(name.lower())
    if not function.bindings:
        return "At least one binding must be declared."
    if not any(_is_trigger(binding) for binding in function.bindings):
        return "No trigger binding specified. A function must have a trigger input binding."
    return None


def _http_trigger(function: FunctionMetadata) -> HttpTrigger | None:
    for binding in function.bindings:
        if str(binding.get("type", "")).lower() == "httptrigger":
            # ValidateHttpFunction: no route (null or whitespace) means the function's name.
            route = str(binding.get("route") or "").strip() or function.name
            return HttpTrigger(route, frozenset(str(m) for m in binding.get("methods") or ()))
    return None


def routes_conflict(one: HttpTrigger, other: HttpTrigger) -> bool:
    """ScriptHost.HttpRoutesConflict: the same route text (ignoring case and outer '/') and a shared method;
    no methods means every method. Methods compare as the host's Intersect does (ordinal; the library emits
    them upper-case)."""
    if one.route.strip("/").lower() != other.route.strip("/").lower():
        return False
    return not one.methods or not other.methods or bool(one.methods & other.methods)


def http_refusal(function: FunctionMetadata, earlier: Mapping[str, HttpTrigger]) -> str | None:
    """ScriptHost.ValidateFunction for an HTTP function, given the HTTP functions accepted before it."""
    trigger = _http_trigger(function)
    if trigger is None:
        return None
    if trigger.route.strip("/").lower().startswith(_RESERVED_ROUTE_PREFIXES):
        return "The specified route conflicts with one or more built in routes."
    for name, other in earlier.items():
        if routes_conflict(trigger, other):
            return f"The route specified conflicts with the route defined by function '{name}'."
    if function.name in earlier:
        return f"The function or proxy name '{function.name}' must be unique within the function app."
    return None


def host_refusals(functions: Sequence[FunctionMetadata]) -> tuple[HostRefusal, ...]:
    """Every function the host would put in error: metadata checks over all, then HTTP checks in order."""
    refusals: list[HostRefusal] = []
    accepted: list[FunctionMetadata] = []
    for function in functions:
        reason = metadata_refusal(function)
        if reason is None:
            accepted.append(function)
        else:
            refusals.append(HostRefusal(function.name, reason))
    routes: dict[str, HttpTrigger] = {}
    for function in accepted:
        reason = http_refusal(function, routes)
        trigger = _http_trigger(function)
        if reason is not None:
            refusals.append(HostRefusal(function.name, reason))
        elif trigger is not None:
            routes[function.name] = trigger
    return tuple(refusals)
