"""Turning plain typed functions into MCP tools with strict, inline schemas and readable errors.

The SDK's defaults don't fit us in four ways, fixed here once for every tool:
- unknown arguments are silently ignored -> we reject them (a typo must not drop data);
- nested models publish `$ref`/`$defs` -> we inline them (several clients can't resolve refs);
- validation errors arrive as pydantic's multi-line dump -> we list `field: problem` lines;
- any other exception reaches the model as "Error executing tool X" -> a KojiError or StorageError
  raised by a tool becomes its `isError` result here, the one error boundary (results.error_result),
  so tools raise typed errors and never build error results for them.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import Tool as MCPTool
from pydantic import ValidationError

from koji_mcp.interviews.ledger import StorageError
from koji_mcp.koji.errors import KojiError
from koji_mcp.server.tools.results import error_result
from koji_mcp.text import clean_koji_text

if TYPE_CHECKING:
    from koji_mcp.server.tools import ToolSpec


class StrictTool(Tool):
    """A Tool that rejects unknown arguments and whose errors read as `field: problem` lines.

    Unknown top-level arguments are checked here rather than by a stricter pydantic model: a
    second model per tool would cost startup time for no other gain (nested models forbid extras
    themselves).
    """

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        fields = self.fn_metadata.arg_model.model_fields
        known = {f.alias or name for name, f in fields.items()}
        unknown = [key for key in arguments if key not in known]
        if unknown:
            try:
                self.fn_metadata.validate_arguments(arguments)
                errors: list[dict[str, Any]] = []
            except ValidationError as exc:
                errors = list(exc.errors(include_url=False))
            errors += [{"loc": (key,), "type": "extra_forbidden", "msg": ""} for key in unknown]
            raise ToolError(describe_errors(self.name, errors))
        try:
            return await super().run(arguments, context, convert_result)
        except UnexpectedToolError as exc:
            # The SDK wraps whatever the tool raised; Koji's and the ledger's failures are expected
            # ones, rendered for the model under this tool's name. Anything else is a crash.
            if isinstance(exc.__cause__, KojiError | StorageError):
                return error_result(exc.__cause__, self.name)
            raise
        except ToolError as exc:
            # Only the SDK's argument-validation ToolError; UnexpectedToolError (a subclass) wraps
            # failures inside the tool body, which must not read as "invalid arguments".
            if type(exc) is ToolError and isinstance(exc.__cause__, ValidationError):
                raise ToolError(describe_validation_error(self.name, exc.__cause__)) from exc.__cause__
            raise


def build_tool(spec: ToolSpec) -> Tool:
    description = inspect.cleandoc(spec.fn.__doc__ or "")
    tool = StrictTool.from_function(spec.fn, title=spec.title, description=description, annotations=spec.annotations,
                                   meta=spec.meta)
    tool.parameters = tidy_schema(inline_refs({**tool.parameters, "additionalProperties": False}))
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = tidy_schema(inline_refs(tool.fn_metadata.output_schema))
    return tool


def describe_tool(tool: Tool) -> dict[str, Any]:
    """The tool as `tools/list` shows it (the catalog stores exactly this)."""
    listed = MCPTool(
        name=tool.name, title=tool.title, description=tool.description, input_schema=tool.parameters,
        output_schema=tool.output_schema, annotations=tool.annotations, _meta=tool.meta,
    )
    return listed.model_dump(mode="json", by_alias=True, exclude_none=True)


def tidy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Flatten what pydantic adds for Python's sake: `title`s, `additionalProperties: true`, and
    `anyOf [X, null]` with a null default.

    An optional field is simply one the caller may omit; the flat form is smaller and reads better
    in every client. Property *names* (keys under `properties`) are never touched.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if (key == "title" and isinstance(value, str)) or (key == "additionalProperties" and value is True):
                continue  # a title is for Python; additionalProperties true is JSON Schema's default
            if key == "properties" and isinstance(value, dict):
                out[key] = {name: walk(prop) for name, prop in value.items()}
            else:
                out[key] = walk(value)
        options = out.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options and out.get("default") is None:
            other = next(o for o in options if o != {"type": "null"})
            merged = {**other, **{k: v for k, v in out.items() if k not in ("anyOf", "default")}}
            return merged
        return out

    return walk(schema)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local '#/$defs/X' refs by their definitions (our models are not recursive)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(defs[ref.rsplit("/", 1)[-1]])
                return {**target, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


FORMAT_HINTS = {
    "locale": "must be a locale code such as 'en', 'es' or 'pt-BR'",
    "interview_id": "must be an interview_id as returned by start_interview or list_interviews",
}


def describe_validation_error(tool: str, exc: ValidationError) -> str:
    return describe_errors(tool, list(exc.errors(include_url=False)))


def describe_errors(tool: str, errors: list[Any]) -> str:
    lines = []
    for err in errors:
        where = clean_koji_text(".".join(str(part) for part in err["loc"]) or "arguments", 80)
        if err["type"] == "extra_forbidden":
            problem = "unknown field (not part of this tool's input schema)"
        elif err["type"] == "missing":
            problem = "required field is missing"
        elif err["type"] == "string_pattern_mismatch":
            problem = FORMAT_HINTS.get(str(err["loc"][-1]), f"has the wrong format ({err['msg']})")
        else:
            problem = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"- {where}: {problem}")
    return (
        f"Invalid arguments for {tool}; nothing was sent to Koji.\n"
        + "\n".join(lines[:10])
        + ("\n- …" if len(lines) > 10 else "")
        + f"\nFix these fields (see the tool's input schema) and call {tool} again."
    )
