"""The request contract: each body, query and form is checked against the very schema that
/openapi.json serves (openapi.SCHEMAS and OPERATIONS), compiled once into plain functions.

Only the part of JSON Schema that the document uses is compiled (type, properties, required,
additionalProperties, items, enum, bounds, sizes, pattern, nullable, oneOf, anyOf, $ref);
any other keyword stops the compilation, so a schema never promises a check that is not made.
A refusal is a 422 that names the field by its path: "Field 'doe.design_space.x_1.lower_bound'
is required.", "Field 'samples[3]' must be an object.". Rules that need a discipline (its input
names, sizes) stay in gaas.py.
"""

import re

import openapi
from errors import Rejected

KNOWN = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum",
    "exclusiveMinimum", "minItems", "maxItems", "minLength", "maxLength", "minProperties", "pattern",
    "nullable", "oneOf", "anyOf", "$ref", "description", "default", "format", "x-setting",
}
# Exact types: orjson and the query parser make no subclasses, and a bool is not a number here.
TYPES = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float)}
WORDS = {"object": "an object", "array": "a list", "string": "a string", "boolean": "a boolean", "integer": "an integer", "number": "a number"}
# What a refused pattern means, in words; the pattern itself for any other.
PATTERN_WORDS = {openapi.PLAIN_TEXT["pattern"]: "must not hold control characters"}
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class Invalid(Exception):
    """A value that breaks its schema; containers add their key or index to `path` on the way out."""

    def __init__(self, message, *path):
        super().__init__(message)
        self.message, self.path = message, list(path)


def render(path):
    """The path as a client writes it: doe.design_space.x_1, samples[3]."""
    text = ""
    for key in reversed(path):
        text += f"[{key}]" if isinstance(key, int) else f"{'.' * bool(text)}{str(key)[:100]}"
    return text


def refusal(error, kind="Field"):
    """The 422 of an Invalid: "<kind> '<path>' <message>.", or "The request <message>." at the root."""
    parent = render(error.path[1:])
    message = error.message.replace("{parent}", f"'{parent}'" if parent else "this request")
    return Rejected(422, f"{kind} '{render(error.path)}' {message}." if error.path else f"The request {message}.")


def check(schema, value, kind="Field", at=None, checker=None):
    """Return value if it matches schema (a dict, or the name of a component), else raise a 422;
    `at` names a value that is not inside a body (a query, a path parameter)."""
    checker = checker or compiled(schema)
    if checker is not None:
        try:
            checker(value)
        except Invalid as error:
            if at is not None:
                error.path.append(at)
            raise refusal(error, kind) from None
    return value


# By component name, or by the id of a schema dict (kept here, so that its id is never reused).
COMPILED = {}
COMPILING = object()


def compiled(schema):
    """The checker of schema, compiled on first use: a function that raises Invalid, or None when
    the schema takes anything."""
    key = schema if isinstance(schema, str) else id(schema)
    if key not in COMPILED:
        COMPILED[key] = (schema, COMPILING)
        COMPILED[key] = (schema, compile_schema(openapi.SCHEMAS[schema] if isinstance(schema, str) else schema))
    checker = COMPILED[key][1]
    if checker is COMPILING:
        raise ValueError(f"contract: {schema} refers to itself")
    return checker


def compile_schema(schema):
    if "$ref" in schema:
        return compiled(schema["$ref"].rpartition("/")[2])
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"contract: no checker for the keywords {sorted(unknown)} of {schema}")
    steps = [step(schema) for step in (value_step, object_step, array_step, choice_step)]
    steps = [step for step in steps if step is not None]
    kind = schema.get("type")
    if kind is not None and kind not in TYPES:
        raise ValueError(f"contract: no checker for the type {kind!r} of {schema}")
    if kind is None and not steps:
        return None
    types, nullable = TYPES.get(kind, ()), schema.get("nullable", False)
    wrong = f"must be {WORDS.get(kind)}"
    # Shapes of their own for the common cases: this runs for every field of every request.
    if not steps:

        def checker(value):
            if type(value) not in types and not (value is None and nullable):
                raise Invalid(wrong)

    elif len(steps) == 1 and types:
        only = steps[0]

        def checker(value):
            if type(value) not in types:
                if value is None and nullable:
                    return
                raise Invalid(wrong)
            only(value)

    else:

        def checker(value):
            if types and type(value) not in types:
                if value is None and nullable:
                    return
                raise Invalid(wrong)
            for step in steps:
                step(value)

    return checker


def value_step(schema):
    """Enum, bounds, lengths and pattern of a scalar."""
    tests = []
    if "enum" in schema:
        allowed = list(schema["enum"])
        quoted = [f"'{item}'" for item in allowed]
        words = quoted[0] if len(allowed) == 1 else " or ".join(quoted) if len(allowed) == 2 else "one of " + ", ".join(map(str, allowed))
        tests.append((lambda value: value in allowed, f"must be {words}"))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        tests.append((bounds_test(low, high, schema.get("exclusiveMinimum", False)), bounds_words(schema, "be")))
    if "minLength" in schema or "maxLength" in schema:
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength", float("inf"))
        tests.append((lambda value: shortest <= len(value) <= longest, sizes_words(schema, "minLength", "maxLength", "character")))
    if "pattern" in schema:
        pattern = schema["pattern"]
        # JSON Schema's $ is JavaScript's: the very end of the text, not before a last newline.
        search = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern).search
        tests.append((lambda value: search(value) is not None, PATTERN_WORDS.get(pattern, f"must match {pattern}")))
    if not tests:
        return None

    def step(value):
        for test, message in tests:
            if not test(value):
                raise Invalid(message)

    return step


def bounds_test(low, high, exclusive):
    # Written so that NaN (from a query) fails every test.
    low = -float("inf") if low is None else low
    high = float("inf") if high is None else high
    if exclusive:
        return lambda value: value > low and value <= high
    return lambda value: value >= low and value <= high


def bounds_words(schema, verb):
    low, high = schema.get("minimum"), schema.get("maximum")
    if schema.get("exclusiveMinimum"):
        words = f"greater than {low}" + (f" and at most {high}" if high is not None else "")
    elif low is not None and high is not None:
        words = f"between {low} and {high}"
    else:
        words = f"at least {low}" if high is None else f"at most {high}"
    return f"must {verb} {words}{setting(schema)}"


def sizes_words(schema, fewest_key, most_key, noun):
    fewest, most = schema.get(fewest_key), schema.get(most_key)
    if fewest is not None and most is not None:
        words = f"{fewest} to {most} {noun}s"
    else:
        count = fewest if most is None else most
        words = f"{'at least' if most is None else 'at most'} {count} {noun}{'s' * (count != 1)}"
    return f"must hold {words}{setting(schema)}"


def setting(schema):
    """The setting a limit comes from, for the client to quote to the administrator."""
    return f" ({schema['x-setting']})" if "x-setting" in schema else ""


def object_step(schema):
    """Fields: unknown ones, each one's schema, the required ones."""
    if not {"properties", "required", "additionalProperties", "minProperties"} & set(schema):
        return None
    properties = {name: compiled(sub) for name, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    refused = f"is not a field of {{parent}}; the fields are {', '.join(properties)}"
    other = False if extra is False else None if extra is True else compiled(extra)
    required = tuple(schema.get("required", ()))
    fewest = schema.get("minProperties", 0)
    too_few = sizes_words(schema, "minProperties", "maxProperties", "field")

    def step(value):
        for name, item in value.items():
            checker = properties.get(name, other)
            if checker is None:
                continue
            if checker is False:
                raise Invalid(refused, name)
            try:
                checker(item)
            except Invalid as error:
                error.path.append(name)
                raise
        for name in required:
            if name not in value:
                raise Invalid("is required", name)
        if len(value) < fewest:
            raise Invalid(too_few)

    return step


def array_step(schema):
    """Size, then each item (a list of numbers is looked at in one pass over its types)."""
    if "items" not in schema and "minItems" not in schema and "maxItems" not in schema:
        return None
    items = compiled(schema.get("items", {}))
    if items is None and "minItems" not in schema and "maxItems" not in schema:
        return None
    fewest, most = schema.get("minItems", 0), schema.get("maxItems", float("inf"))
    sizes = sizes_words(schema, "minItems", "maxItems", "item")
    plain = set(TYPES.get(schema["items"]["type"], ())) if type_only(schema.get("items", {})) else None

    def step(value):
        if not fewest <= len(value) <= most:
            raise Invalid(sizes)
        if items is None or (plain and set(map(type, value)) <= plain):
            return
        for index, item in enumerate(value):
            try:
                items(item)
            except Invalid as error:
                error.path.append(index)
                raise

    return step


def choice_step(schema):
    """oneOf and anyOf, in the two forms the document uses: branches that differ by the fields
    they require (exactly one, or at least one, of some fields), or branches of distinct types."""
    keyword = "oneOf" if "oneOf" in schema else "anyOf" if "anyOf" in schema else None
    if keyword is None:
        return None
    branches = schema[keyword]
    if all(set(branch) <= {"required", "not"} and set(branch.get("not", {})) <= {"required"} for branch in branches):
        # Read as sets of fields: (those it requires, those it must not hold all of).
        forms = [(branch["required"], branch.get("not", {}).get("required")) for branch in branches]
        names = [f"'{name}'" for branch in branches for name in branch["required"]]
        if keyword == "oneOf":
            needs, wanted = f"needs exactly one of the fields {' and '.join(names)}", (lambda count: count == 1)
        else:
            needs, wanted = f"needs the field {' or '.join(names)}", (lambda count: count >= 1)

        def step(value):
            count = 0
            for required, refused in forms:
                if all(name in value for name in required) and not (refused and all(name in value for name in refused)):
                    count += 1
            if not wanted(count):
                raise Invalid(needs)

        return step
    kinds = [branch.get("type") for branch in branches]
    if None in kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"contract: the branches of {keyword} must be of distinct types: {schema}")
    by_type = [(TYPES[kind], compiled(branch)) for kind, branch in zip(kinds, branches)]
    wrong = "must be " + ", ".join(WORDS[kind] for kind in kinds[:-1]) + f" or {WORDS[kinds[-1]]}"
    if all(type_only(branch) for branch in branches):
        # Branches that check nothing but their type: one test.
        allowed = {kind for types, _ in by_type for kind in types}

        def step(value):
            if type(value) not in allowed:
                raise Invalid(wrong)

        return step

    def step(value):
        for types, checker in by_type:
            if type(value) in types:
                if checker is not None:
                    checker(value)
                return
        raise Invalid(wrong)

    return step


def type_only(schema):
    """Whether a schema checks nothing but the type of a value."""
    keys = set(schema) - {"description"}
    return keys == {"type"} or (keys == {"type", "items"} and schema["items"] == {})


# Text parameters: queries and form fields arrive as text, read by their schema's type.


def parse(schema, raw):
    """The value of the text raw for a schema of one type; Invalid if it cannot be one."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        raise Invalid(f"must be {WORDS[kind]}") from None
    if kind == "boolean":
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise Invalid("must be true or false")
    return raw


class Operation:
    """The checks of one operation of openapi.OPERATIONS, compiled once: its JSON body, its query
    parameters and the text fields of its form."""

    def __init__(self, method, path):
        operation = openapi.OPERATIONS[(method, path)]
        content = operation.get("requestBody", {}).get("content", {})
        self.body_schema = content.get("application/json", {}).get("schema")
        self.queries = [text_parameter(p["name"], p["schema"], p.get("required", False)) for p in operation.get("parameters", ()) if p["in"] == "query"]
        form = content.get("multipart/form-data") or content.get("application/x-www-form-urlencoded") or {}
        form = form.get("schema", {})
        # Files are read by files.py; the text fields are read here.
        self.fields = [
            text_parameter(name, schema, name in form.get("required", ()))
            for name, schema in form.get("properties", {}).items()
            if schema.get("format") != "binary" and schema.get("items", {}).get("format") != "binary"
        ]
        self.body_check = compiled(self.body_schema) if self.body_schema is not None else None

    def body(self, body):
        """The JSON body, checked."""
        return check(self.body_schema, body, checker=self.body_check)

    def query(self, params):
        """The query parameters, read and checked, by name; an absent one is its default or None."""
        return read_text(self.queries, params, "Query")

    def form(self, form):
        """The text fields of a form, read and checked, by name."""
        return read_text(self.fields, form, "Field")


def text_parameter(name, schema, required):
    return name, schema, required, schema.get("default"), compiled(schema)


def read_text(parameters, given, kind):
    values = {}
    for name, schema, required, default, checker in parameters:
        raw = given.get(name)
        if raw is None:
            if required:
                raise refusal(Invalid("is required", name), kind)
            values[name] = default
            continue
        try:
            if not isinstance(raw, str):
                raise Invalid(f"must be {WORDS.get(schema.get('type'), 'text')}")
            value = parse(schema, raw)
            if checker is not None:
                checker(value)
        except Invalid as error:
            error.path.append(name)
            raise refusal(error, kind) from None
        values[name] = value
    return values


# Every operation's checks, compiled once, when the app is imported.
OPERATIONS = {key: Operation(*key) for key in openapi.OPERATIONS}


def operation(request):
    """The checks of the operation that a request was routed to."""
    return OPERATIONS[("GET" if request.method == "HEAD" else request.method, request.scope["route"].path)]


def body(request, value):
    """The request's JSON body (parsed), checked by its operation's schema."""
    return operation(request).body(value)


def query(request):
    """The request's query parameters, read and checked, by name."""
    return operation(request).query(request.query_params)


def form(request, fields):
    """The text fields of the request's form (parsed), read and checked, by name."""
    return operation(request).form(fields)
