"""AnalyticDiscipline formulas, checked and built as sympy objects: no client text is evaluated.

GEMSEO hands formula strings to sympy's parse_expr, which is an eval. Here Python's ast parses the
text, every node is checked against a whitelist, and sympy objects are built from the tree; GEMSEO
then only ever receives those objects.
"""

import ast
import builtins
import math
import re

import numpy
import sympy

MAX_LENGTH = 2000
MAX_NESTING = 30  # brackets, counted on the text so that ast.parse never recurses deeply
MAX_NODES = 500
MAX_DEPTH = 30
MAX_OUTPUTS = 100
MAX_NAME = 64
MAX_INTEGER = 10**15
MAX_NUMBER = 10**100  # any number sympy makes, numerator and denominator alike
MAX_EXPONENT = 100
MAX_MIN_MAX = 8  # arguments of Min and Max in a formula: sympy compares them pairwise
MAX_DERIVATIVES = 200  # (output, input) pairs in all: GEMSEO lambdifies each, about 20 ms; 200 keep a build within ~5 s
QUOTE = 40

OPTIONS = {"expressions": dict, "name": str}  # AnalyticDiscipline.__init__ in GEMSEO 6.3.3
CONSTANTS = {"pi": sympy.pi, "E": sympy.E}
# Each one computed and linearized by AnalyticDiscipline in tests/test_formulas.py.
UNARY = "sin cos tan cot sec csc asin acos atan acot asec acsc sinh cosh tanh coth sech csch"
UNARY += " asinh acosh atanh acoth asech acsch exp sqrt Abs erf erfc"
FUNCTIONS = {name: (getattr(sympy, name), 1, 1) for name in UNARY.split()}
FUNCTIONS |= {"log": (sympy.log, 1, 2), "atan2": (sympy.atan2, 2, 2)}
FUNCTIONS |= {"Min": (sympy.Min, 2, MAX_MIN_MAX), "Max": (sympy.Max, 2, MAX_MIN_MAX)}
# Not variable names: parse_expr reads sympy's names as objects, and lambdify writes numpy and
# builtin names bare in GEMSEO's code (Max as reduce(maximum, ...)), where a variable e or sin
# would shadow them.
RESERVED = frozenset([*dir(sympy), *dir(numpy), *dir(builtins), "reduce", "numpy", "scipy", "math"])
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
CHAINS = {ast.Add: "+", ast.Sub: "+", ast.Mult: "*", ast.Div: "*"}
ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call, ast.Load, ast.UAdd, ast.USub)
ALLOWED += (ast.Pow, *CHAINS)
SYNTAX = {ast.Attribute: "an attribute (a.b)", ast.Subscript: "a subscript (a[b])"}
SYNTAX |= {ast.BitXor: "the operator ^ (write **)", ast.Mod: "the operator %", ast.FloorDiv: "the operator //"}
UNDEFINED = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


class FormulaError(ValueError):
    """An option or a formula of AnalyticDiscipline that is refused."""


def checked_options(options):
    """Check the discipline_options of an AnalyticDiscipline; return them with sympy formulas."""
    if not isinstance(options, dict):
        raise FormulaError("The options of AnalyticDiscipline must be an object.")
    for key, value in options.items():
        if key not in OPTIONS:
            known = ", ".join(OPTIONS)
            raise FormulaError(f"Unknown option {_quote(key)} for AnalyticDiscipline (known: {known}).")
        if not isinstance(value, OPTIONS[key]):
            kind = "an object" if OPTIONS[key] is dict else "a string"
            raise FormulaError(f"Option {key!r} of AnalyticDiscipline must be {kind}.")
    name = options.get("name", "")
    if len(name) > MAX_NAME or not name.isprintable():
        raise FormulaError(f"Option 'name' must be printable and at most {MAX_NAME} characters.")
    expressions = options.get("expressions")
    if not expressions or len(expressions) > MAX_OUTPUTS:
        raise FormulaError(f"Option 'expressions' must map 1 to {MAX_OUTPUTS} output names to formulas.")
    built = {}
    for output, text in expressions.items():
        if not (isinstance(output, str) and IDENTIFIER.fullmatch(output) and len(output) <= MAX_NAME):
            raise FormulaError(f"Output name {_quote(output)} is not allowed: {_NAMING}.")
        built[output] = parse(text, output)
    if sum(len(formula.free_symbols) for formula in built.values()) > MAX_DERIVATIVES:
        raise FormulaError(f"The formulas have more than {MAX_DERIVATIVES} partial derivatives in all.")
    extremes = [found for formula in built.values() for found in formula.find(lambda part: isinstance(part, (sympy.Min, sympy.Max)))]
    if sum(len(found.args) for found in extremes) > 2 * MAX_MIN_MAX:
        # Each argument costs GEMSEO about 0.2 s to differentiate: bound the build of all outputs.
        raise FormulaError(f"Min and Max take at most {2 * MAX_MIN_MAX} arguments in all the formulas.")
    return {**options, "expressions": built}


def parse(text, output="?"):
    """Check one formula and build it as a sympy expression."""
    try:
        return _parse(text)
    except FormulaError as error:
        raise FormulaError(f"Formula of output {_quote(output)}: {error}.") from None


def float_inputs(data):
    """Return the data with integers and booleans as float64: sympy would compute them exactly."""
    cast = {}
    for name, value in data.items():
        if isinstance(value, numpy.ndarray) and value.dtype.kind in "biuO":
            value = value.astype(numpy.float64)
        elif isinstance(value, (int, numpy.integer, numpy.bool_)):  # bool is an int
            value = numpy.float64(value)
        cast[name] = value
    return cast


_NAMING = f"a letter, then letters, digits or _, at most {MAX_NAME} characters"


def _quote(text):
    text = str(text)
    return repr(text) if len(text) <= QUOTE else repr(text[:QUOTE]) + "..."


def _parse(text):
    if not isinstance(text, str):
        raise FormulaError("it must be a string")
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"it is longer than {MAX_LENGTH} characters")
    text = text.strip(" ")  # ast.parse takes leading spaces for an indent
    if not (text.isascii() and text.isprintable()):
        # Python folds fullwidth and other compatibility letters into ASCII names (NFKC).
        raise FormulaError("only printable ASCII characters are allowed")
    level = deepest = 0
    for char in text:
        level += (char in "([{") - (char in ")]}")
        deepest = max(deepest, level)
    if deepest > MAX_NESTING:
        raise FormulaError(f"brackets are nested more than {MAX_NESTING} deep")
    try:
        tree = ast.parse(text, mode="eval")  # no constant folding: 9**9**9 stays three numbers
    except SyntaxError as error:
        raise FormulaError(f"it is not a valid expression (column {error.offset})") from None
    except (ValueError, RecursionError, MemoryError):
        raise FormulaError("it is too complex to parse") from None
    _check_tree(tree)
    try:
        expression = _build(tree.body, text)
    except FormulaError:
        raise
    except (TypeError, ValueError, ArithmeticError):  # e.g. Max of a complex constant
        raise FormulaError("sympy cannot build it as a real expression") from None
    if expression.has(*UNDEFINED):
        raise FormulaError("it is undefined or complex somewhere (a division by zero, log(0), sqrt(-1)?)")
    for number in expression.atoms(sympy.Number):
        _bounded(number)
    return expression


def _check_tree(tree):
    nodes = min_max = 0
    for node in ast.walk(tree):  # iterative, so safe on whatever ast.parse returned
        if not isinstance(node, ALLOWED):
            raise FormulaError(f"{SYNTAX.get(type(node), 'the syntax ' + type(node).__name__)} is not allowed")
        nodes += isinstance(node, ast.expr)
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            raise FormulaError(f"constants of type {type(node.value).__name__} are not allowed, only numbers")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise FormulaError("only the allowed functions can be called, by their name")
            if node.func.id not in FUNCTIONS:
                raise FormulaError(f"the name {_quote(node.func.id)} is not an allowed function")
            if node.keywords:
                raise FormulaError("keyword arguments are not allowed")
            name, (_, least, most) = node.func.id, FUNCTIONS[node.func.id]
            if not least <= len(node.args) <= most:
                raise FormulaError(f"{name} takes {least if least == most else f'{least} to {most}'} argument(s)")
            min_max += len(node.args) if name in ("Min", "Max") else 0
    if nodes > MAX_NODES:
        raise FormulaError(f"it has more than {MAX_NODES} parts (numbers, names, operations)")
    if min_max > MAX_MIN_MAX:
        raise FormulaError(f"Min and Max take at most {MAX_MIN_MAX} arguments in all")
    deepest, stack = 0, [(tree.body, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                # a + b - c nests to the left in the tree but is one flat sum: one level
                flat = child is getattr(node, "left", None) and _chain(child) and _chain(child) == _chain(node)
                stack.append((child, level if flat else level + 1))
    if deepest > MAX_DEPTH:
        raise FormulaError(f"it is nested more than {MAX_DEPTH} deep")


def _chain(node):
    return isinstance(node, ast.BinOp) and CHAINS.get(type(node.op))


def _build(node, text):
    """The sympy object of a checked node; recursion is as deep as the tree, at most MAX_DEPTH."""
    if _chain(node):
        kind, operands = _chain(node), []
        while _chain(node) == kind:  # along the chain without recursing
            operand = _build(node.right, text)
            if isinstance(node.op, ast.Sub):
                operand = -operand
            elif isinstance(node.op, ast.Div):
                operand = sympy.Pow(operand, -1)
            operands.append(operand)
            node = node.left
        operands.append(_build(node, text))
        return _bounded(sympy.Add(*operands[::-1]) if kind == "+" else sympy.Mul(*operands[::-1]))
    if isinstance(node, ast.BinOp):  # only ** is left
        return _power(_build(node.left, text), _build(node.right, text))
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, text)
        return _bounded(-operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Constant):
        return _number(node, text)
    if isinstance(node, ast.Name):
        return CONSTANTS[node.id] if node.id in CONSTANTS else sympy.Symbol(_variable(node.id), real=True)
    function = FUNCTIONS[node.func.id][0]  # a Call that _check_tree allowed
    args = [_build(arg, text) for arg in node.args]
    if function is sympy.exp:
        _check_exponent(args[0])
    return _bounded(function(*args))


def _power(base, exponent):
    if exponent.is_Number and exponent.is_finite and abs(exponent) > MAX_EXPONENT:
        shown = float(exponent) if exponent.is_Float else exponent
        raise FormulaError(f"the exponent {_quote(shown)} is larger than {MAX_EXPONENT} in size")
    _check_exponent(exponent)
    return _bounded(sympy.Pow(base, exponent))


def _check_exponent(exponent):
    # sympy rewrites exp(k*log(2)) as 2**k and computes it exactly: k must stay small.
    for term in sympy.Add.make_args(exponent):
        if not term.free_symbols and term.has(sympy.log):
            if any(abs(number) > MAX_EXPONENT for number in term.atoms(sympy.Rational)):
                raise FormulaError(f"a constant exponent holding log and a number larger than {MAX_EXPONENT}")


def _number(node, text):
    value, literal = node.value, ast.get_source_segment(text, node) or str(node.value)
    if type(value) is int:
        if abs(value) > MAX_INTEGER:
            raise FormulaError(f"the integer {_quote(literal)} is larger than 10**15")
        return sympy.Integer(value)
    # Python reads 1e-9999999 as 0.0 at once, but sympy's own parser would hang: refuse such text.
    if re.search(r"[eE][+-]?\d{4}", literal.replace("_", "")) or not math.isfinite(value) or abs(value) > 1e100:
        raise FormulaError(f"the number {_quote(literal)} is out of range (at most 1e100, exponent of 3 digits)")
    return sympy.Float(value)


def _variable(name):
    if name in FUNCTIONS:
        raise FormulaError(f"the function {name} must be called, as in {name}(x)")
    if not IDENTIFIER.fullmatch(name) or len(name) > MAX_NAME:
        raise FormulaError(f"the name {_quote(name)} is not allowed: {_NAMING}")
    if name in RESERVED:
        raise FormulaError(f"the name {_quote(name)} is reserved (a sympy, numpy or Python name): choose another")
    return name


def _bounded(value):
    """The value, if the numbers sympy just made, at its top, are within MAX_NUMBER."""
    for number in (value, *value.args):
        if number.is_Rational and (abs(number.p) > MAX_NUMBER or number.q > MAX_NUMBER):
            raise FormulaError("a constant in it grows beyond 10**100")
        if number.is_Float and abs(float(number)) > 1e100:
            raise FormulaError("a constant in it grows beyond 1e100")
    return value
