"""JSONata for Step Functions: jsonata-python plus the functions Step Functions adds.

moto 5.2 parses `"QueryLanguage": "JSONata"` machines but evaluates nothing (its evaluator is a
JVM bridge it never installs); `moto_seam.evaluate_jsonata_with` puts `evaluate` there. AWS binds
`$states` (input, result, errorOutput, context) and the `Assign`ed variables, and adds $partition,
$range, $hash, $random(seed), $uuid and $parse:
https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
Expressions are compiled once (by text) and evaluated with bindings, never spliced into a string.
"""
from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonata import Jsonata
from jsonata.jexception import JException
from jsonata.utils import Utils

HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


class JSONataSyntaxError(ValueError):
    """An expression that does not parse (AWS: INVALID_JSONATA_EXPRESSION at CreateStateMachine)."""


class JSONataEvaluationError(RuntimeError):
    """An expression failed while it ran (AWS: States.QueryEvaluationError)."""


def _partition(array: list, size: int) -> list:
    if not isinstance(array, list) or not isinstance(size, int | float) or size < 1:
        raise JSONataEvaluationError("$partition expects an array and a chunk size of at least 1")
    size = int(size)
    return [list(array[i : i + size]) for i in range(0, len(array), size)]


def _range(first: float, last: float, step: float = 1) -> list:
    if not step:
        raise JSONataEvaluationError("$range expects a non-zero step")
    values, value = [], first
    while (step > 0 and value <= last) or (step < 0 and value >= last):
        values.append(value)
        value += step
    return values


def _hash(data: Any, algorithm: str) -> str:
    if algorithm not in HASH_ALGORITHMS:
        raise JSONataEvaluationError(f"$hash algorithm must be one of {', '.join(HASH_ALGORITHMS)}, not {algorithm!r}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return hashlib.new(HASH_ALGORITHMS[algorithm], text.encode()).hexdigest()


def _random(seed: Any = None) -> float:
    return random.Random(seed).random() if seed is not None else random.random()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as error:
        raise JSONataEvaluationError(f"$parse: not a JSON string: {error}") from error


STEP_FUNCTIONS_FUNCTIONS = {
    "partition": Jsonata.JLambda(_partition),
    "range": Jsonata.JLambda(_range),
    "hash": Jsonata.JLambda(_hash),
    "random": Jsonata.JLambda(_random),
    "uuid": Jsonata.JLambda(lambda: str(uuid.uuid4())),
    "parse": Jsonata.JLambda(_parse),
}


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Jsonata:
    """The parsed expression, once per text (definitions are immutable per version)."""
    try:
        compiled = Jsonata(expression)
    except JException as error:
        raise JSONataSyntaxError(str(error)) from error
    compiled.set_output_convert_nulls(False)  # keep null apart from undefined
    return compiled


def _plain(value: Any) -> Any:
    """jsonata-python's sequences and null marker as plain JSON values."""
    if value is Utils.NULL_VALUE:
        return None
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def evaluate(expression: str, states: dict, variables: dict) -> tuple[bool, Any]:
    """(defined, value) of `expression` with $states and the workflow variables bound."""
    bindings = {**STEP_FUNCTIONS_FUNCTIONS, **variables, "states": states}
    try:
        result = compile_expression(expression).evaluate(None, bindings)
    except JException as error:
        raise JSONataEvaluationError(str(error)) from error
    except JSONataEvaluationError:
        raise
    except (TypeError, ValueError, ArithmeticError) as error:
        raise JSONataEvaluationError(f"{type(error).__name__}: {error}") from error
    if result is None:
        return False, None
    return True, _plain(result)


def jsonata_strings(definition: dict) -> Iterator[tuple[str, str]]:
    """(JSON pointer, expression) of every `{% ... %}` string in the definition's JSONata states."""

    def walk(node: Any, path: str, language: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            language = node.get("QueryLanguage", language) if isinstance(node.get("QueryLanguage"), str) else language
            for key, value in node.items():
                yield from walk(value, f"{path}/{key}", language)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{path}/{index}", language)
        elif isinstance(node, str) and language == "JSONata" and node.startswith("{%") and node.endswith("%}"):
            yield path, node[2:-2].strip()

    yield from walk(definition, "", "JSONPath")


def check_definition(definition_text: str) -> None:
    """Raise JSONataSyntaxError, with AWS's wording and the field's location, for the first bad expression."""
    try:
        definition = json.loads(definition_text)
    except ValueError:
        return  # moto's parser reports malformed JSON
    for path, expression in jsonata_strings(definition):
        try:
            compile_expression(expression)
        except JSONataSyntaxError as error:
            raise JSONataSyntaxError(f"INVALID_JSONATA_EXPRESSION: {error} at {path}") from error
