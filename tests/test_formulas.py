"""formulas.py: attacks are refused fast, and checked formulas behave in GEMSEO as the raw text does."""

import inspect
import io
import keyword
import threading
import tokenize

import numpy
import pytest
import sympy
from gemseo import create_discipline
from gemseo.disciplines.analytic import AnalyticDiscipline
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import formulas
from formulas import FormulaError, checked_options, float_inputs, parse

SECRET = "s3cr3t-formulas-test-value"
TOUCH = "__import__('os').system('touch {m}')"
ATTACKS = [
    # builtins, called directly or reached through strings
    TOUCH,
    "eval(\"" + TOUCH + "\")",
    "exec('import os; os.system(\"touch {m}\")')",
    "open('{m}', 'w').write('x')",
    "getattr(__import__('os'), 'system')('touch {m}')",
    "globals()['__builtins__']",
    "compile('1', 'f', 'eval')",
    "__builtins__.__import__('os')",
    "breakpoint()",
    "vars()",
    "print(1)",
    "type(x)",
    "os.system('touch {m}')",
    "numpy.ones(10**10)",
    "sympy.sin(x)",
    # dunder chains
    "().__class__.__base__.__subclasses__()",
    "x.__class__.__mro__[1].__subclasses__()",
    "sin.__globals__['__builtins__']['__import__']('os').system('touch {m}')",
    "Symbol.__init__.__globals__",
    "pi.__class__.__dict__",
    "(1).__class__",
    "sin(x).func.__module__",
    # sympy's own parsers and evaluators nested in the text
    "sympify(\"" + TOUCH + "\")",
    "S(\"" + TOUCH + "\")",
    "parse_expr(\"" + TOUCH + "\")",
    "lambdify(x, \"" + TOUCH + "\")(1)",
    "Function('f')(x)",
    "Symbol('x')",
    "sin(\"" + TOUCH + "\")",
    "exp(x).subs(x, 1)",
    "Integer(10)**Integer(10**15)",
    # lambda, factorials, hidden payloads
    "(lambda: " + TOUCH + ")()",
    "x!",
    "(10**6)!",
    "factorial(10**6)",
    "x**2 + 0*" + TOUCH,
    "sin(x) + 0*eval('1')",
    "x if " + TOUCH + " else y",
    "[c for c in ().__class__.__bases__]",
    "{x: 1}",
    "x and y",
    "not x",
    "x < y",
    # strings built from escapes, chr codes, implicit concatenation, unicode look-alikes
    "'\\x5f\\x5fimport\\x5f\\x5f'",
    "chr(95) + chr(95) + 'import'",
    "'__imp' 'ort__'",
    "b'abc'",
    "\uff45\uff56\uff41\uff4c('1')",
    "\uff58 + 1",
    "\uff53\uff49\uff4e(x)",
    "x + \u2139",
    "x\n+1",
    "x\x00",
    # walrus, f-strings, starred, keywords, other syntax
    "(y := __import__('os'))",
    "f\"{" + TOUCH + "}\"",
    "sin(*[x])",
    "sin(x=1)",
    "x[0]",
    "x % 2",
    "x // 2",
    "x @ y",
    "x ^ 2",
    "x << 2",
    "~x",
    "1j*x",
    "True + x",
    "None",
    "...",
    "x; import os",
    # names that are not symbols, or not plain ones
    "gamma*x",
    "e*x",
    "N",
    "S + x",
    "I*x",
    "oo",
    "nan + x",
    "zoo",
    "_x + 1",
    "__x__",
    "reduce + x",
    "maximum*x",
    "a" * 100 + " + 1",
    # denial of service: huge numbers, exact powers, precision, text and tree sizes
    "10**10**10",
    "9**9**9",
    "(2**100)**100",
    "2**(2**(2**(2**10)))",
    "factorial(10**7)",
    "N(pi, 10**7)",
    "'a'*10**9",
    "x*1e-9999999",
    "1e999*x",
    "1.5e1234*x",
    "99999999999999999999*x",
    "0xfffffffffffffffffff*x",
    "x**(10**15)",
    "exp(log(10)*10**15)",
    "exp(x + 10**15*log(2))",
    "E**(10**15*log(10))",
    "sqrt(2)**(10**15)",
    "exp(log(2)/2*10**15)",
    "Max(" + ", ".join(f"x{i}" for i in range(50)) + ")",
    "Max(Max(Max(Max(a, b, c, d), f, g, h), k, m, n, p), q, r, s, t)",
    "1/0",
    "log(0)",
    "sqrt(-1)*x",
    "(" * 10000 + "x" + ")" * 10000,
    "(" * 990 + "x" + ")" * 990,
    "-" * 1990 + "x",
    "x**" * 600 + "x",
    "1e-1_000_000*x",
    "sin(" * 40 + "x" + ")" * 40,
    "-" * 5000 + "x",
    "x+" * 3000 + "x",
    "+".join(["x"] * 400),
    "x**" * 400 + "x",
    "-(" * 20 + "x" + ")" * 20 + "**x" * 400,
]


def check_attack(attack):
    """The error checked_options raises, run in a thread so that a hang fails after 2 s."""
    result = {}

    def target():
        try:
            checked_options({"expressions": {"y": attack}})
        except Exception as error:  # any kind: the caller asserts it is a FormulaError
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(2)
    assert not thread.is_alive(), f"took more than 2 s: {attack[:60]!r}"
    return result.get("error")


@pytest.mark.parametrize("attack", ATTACKS, ids=range(len(ATTACKS)))
def test_attack_is_refused(attack, tmp_path, monkeypatch):
    monkeypatch.setenv("GAAS_TEST_SECRET", SECRET)
    marker = tmp_path / "MARKER"
    attack = attack.replace("{m}", str(marker))
    error = check_attack(attack)
    assert isinstance(error, FormulaError), (attack[:60], error)
    message = str(error)
    assert message.startswith("Formula of output 'y': ") and message.endswith(".")
    assert SECRET not in message and len(message) < 200
    assert len(attack) < 60 or attack[:60] not in message
    assert not marker.exists()


def test_many_attacks():
    assert len(ATTACKS) >= 50


def run(expressions, point, sort=True):
    """Input names (sorted, or in the grammar's order), outputs and Jacobian of an
    AnalyticDiscipline at a point."""
    discipline = create_discipline("AnalyticDiscipline", expressions=expressions)
    names = list(discipline.io.input_grammar.names)
    names = sorted(names) if sort else names
    data = {name: numpy.array([point[name]]) for name in names}
    outputs = discipline.execute(data)
    jacobian = discipline.linearize(data, compute_all_jacobians=True)
    return names, {name: outputs[name] for name in expressions}, jacobian


def assert_same(text, point, rtol=1e-12, atol=1e-8):
    names, outputs, jacobian = run({"y": text}, point)
    checked = checked_options({"expressions": {"y": text}})["expressions"]
    assert isinstance(checked["y"], sympy.Expr)
    names_2, outputs_2, jacobian_2 = run(checked, point)
    assert names == names_2
    assert numpy.allclose(outputs["y"], outputs_2["y"], rtol=rtol, atol=atol)
    for name in names:
        assert numpy.allclose(jacobian["y"][name], jacobian_2["y"][name], rtol=rtol, atol=atol), name
    return outputs_2, jacobian_2


TYPICAL = [
    ("x**2 + 3*x - 1", {"x": 0.7}),
    ("2*x**3 - x*y + y**2/4", {"x": 0.7, "y": -1.3}),
    ("sin(x)*exp(-y)", {"x": 0.7, "y": 0.4}),
    ("sqrt(x**2 + y**2)", {"x": 0.7, "y": -1.3}),
    ("log(x, 2)", {"x": 3.5}),
    ("log(x) + log(1 + y)", {"x": 3.5, "y": 0.2}),
    ("atan2(y, x)", {"x": -0.7, "y": 0.4}),
    ("Max(x, y)", {"x": 0.7, "y": 0.4}),
    ("Min(x, y, 2*z)", {"x": 0.7, "y": 0.4, "z": 0.1}),
    ("Abs(x)", {"x": -0.7}),
    ("1/(1 + exp(-x))", {"x": 0.3}),
    ("pi*r**2", {"r": 1.5}),
    ("E**x", {"x": 0.3}),
    ("-x + -(-y)", {"x": 0.3, "y": 2.0}),
    ("0.5*rho*v**2*Cd*A_ref", {"rho": 1.2, "v": 30.0, "Cd": 0.3, "A_ref": 2.5}),
    ("6.674e-11*m1*m2/d**2", {"m1": 5.9e24, "m2": 7.3e22, "d": 3.8e8}),
    ("x**(1/3) + x**-2 + x**2.5", {"x": 1.7}),
    ("tanh(x) + cosh(y) - sinh(z)", {"x": 0.3, "y": 0.4, "z": 0.5}),
    ("asin(x) + acos(x) + atan(x)", {"x": 0.3}),
    ("tan(x)*cot(y) + sec(x) - csc(y)", {"x": 0.3, "y": 0.4}),
    ("asinh(x) + acosh(y) + atanh(z)", {"x": 0.3, "y": 1.4, "z": 0.5}),
    ("x1 - x2 + x3*x4/x5", {"x1": 1.0, "x2": 2.0, "x3": 3.0, "x4": 4.0, "x5": 5.0}),
    ("(x - 1)**2 + 100*(y - x**2)**2", {"x": 1.3, "y": 0.7}),
    ("exp(-(x**2 + y**2)/2)/(2*pi)", {"x": 0.3, "y": -0.2}),
    ("  +x - 2.5 + 1e3*y ", {"x": 0.3, "y": 0.001}),
    ("erf(x) + erfc(y)", {"x": 0.3, "y": 0.4}),
    (" + ".join(f"{i}*x**{i}" for i in range(60)), {"x": 0.9}),
]


@pytest.mark.parametrize("text, point", TYPICAL, ids=[text[:30] for text, _ in TYPICAL])
def test_typical_formula_matches_gemseo(text, point):
    assert_same(text, point)


POINTS = {"acosh": 1.7, "asec": 1.7, "acsc": 1.7, "acoth": 1.7, "Abs": -0.3}
CALLS = [f"{name}(x)" for name, (_, least, _) in formulas.FUNCTIONS.items() if least == 1]
CALLS += ["log(x, z)", "atan2(x, z)", "Min(x, z)", "Max(x, z)", "Min(x, z, 0.5)", "Max(x, z, 0.5)"]


@pytest.mark.parametrize("call", CALLS)
def test_each_function_computes_and_linearizes(call):
    """The whitelist evidence: same as GEMSEO from text, and the derivative agrees with finite differences."""
    point = {"x": POINTS.get(call.split("(")[0], 0.3), "z": 1.7}
    outputs, jacobian = assert_same(call, point)
    assert numpy.all(numpy.isfinite(outputs["y"])) and outputs["y"].dtype == numpy.float64
    expressions = checked_options({"expressions": {"y": call}})["expressions"]
    for name in jacobian["y"]:
        step = {**point, name: point[name] + 1e-6}
        back = {**point, name: point[name] - 1e-6}
        slope = (run(expressions, step)[1]["y"] - run(expressions, back)[1]["y"]) / 2e-6
        assert numpy.allclose(jacobian["y"][name].ravel(), slope, rtol=1e-5), name


def test_generated_code_names_are_reserved():
    """Every name GEMSEO's lambdify writes is one a variable may not take."""
    expressions = {f"y{i}": text for i, text in enumerate([*CALLS, "pi*x + E"])}
    discipline = create_discipline("AnalyticDiscipline", **checked_options({"expressions": expressions}))
    functions = list(discipline._sympy_funcs.values())
    functions += [function for jacobian in discipline._sympy_jac_funcs.values() for function in jacobian.values()]
    written = set()
    for function in functions:
        source = inspect.getsource(function)
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        written |= {token.string for token in tokens if token.type == tokenize.NAME}
    written -= {"x", "z", "_lambdifygenerated"} | set(keyword.kwlist)
    assert written and written <= formulas.RESERVED, written - formulas.RESERVED


def test_symbols_are_real_because_gemseo_derives_by_real_symbols():
    """GEMSEO differentiates with respect to real symbols: plain ones would give a zero Jacobian."""
    plain = run({"y": sympy.Symbol("x") ** 2}, {"x": 0.7})[2]["y"]["x"]
    assert numpy.allclose(plain, 0.0)
    expression = parse("x**2 + sin(z)")
    assert all(symbol.is_real for symbol in expression.free_symbols)
    assert numpy.allclose(run({"y": expression}, {"x": 0.7, "z": 0.1})[2]["y"]["x"], 1.4)


LEAVES = st.one_of(st.sampled_from(["x", "y", "z"]), st.sampled_from(["1", "2", "3", "0.5", "2.5", "pi", "E"]))


FUNCTION = st.sampled_from(["sin", "cos", "atan", "tanh", "exp"])


def extend(children):
    pairs = st.tuples(children, children)
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        pairs.map(lambda t: f"({t[0]})/(1 + ({t[1]})**2)"),
        pairs.map(lambda t: f"Max({t[0]}, {t[1]})"),
        children.map(lambda c: f"-({c})"),
        children.map(lambda c: f"({c})**2"),
        st.tuples(FUNCTION, children).map(lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda c: f"sqrt(1 + ({c})**2)"),
        children.map(lambda c: f"log(2 + ({c})**2)"),
    )


COORDINATE = st.floats(-2, 2, allow_nan=False)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.recursive(LEAVES, extend, max_leaves=8), COORDINATE, COORDINATE, COORDINATE)
def test_generated_formulas_match_gemseo(text, x, y, z):
    assume(len(text) <= formulas.MAX_LENGTH and text.count("(") <= formulas.MAX_NESTING)
    point = {"x": x, "y": y, "z": z}
    names, outputs, jacobian = run({"y": text}, point)
    values = [outputs["y"], *(jacobian["y"][name] for name in names)]
    assume(all(numpy.all(numpy.isfinite(value)) for value in values))
    names_2, outputs_2, jacobian_2 = run(checked_options({"expressions": {"y": text}})["expressions"], point)
    assert names == names_2
    values_2 = [outputs_2["y"], *(jacobian_2["y"][name] for name in names)]
    for value, value_2 in zip(values, values_2):
        assert numpy.allclose(value, value_2, rtol=1e-9, atol=1e-12), text


@pytest.mark.parametrize(
    "text, reason",
    [
        ("x + " * 600 + "x", "longer than 2000 characters"),
        (" + ".join(["x"] * 300), "more than 500 parts"),
        ("-(" * 31 + "x" + ")" * 31, "brackets are nested more than 30 deep"),
        ("-" * 31 + "x", "nested more than 30 deep"),
        ("x**" * 31 + "x", "nested more than 30 deep"),
        ("x**101", "exponent '101' is larger than 100"),
        ("x**-100.5", "exponent '-100.5' is larger than 100 in size"),
        ("1000000000000001*x", "integer '1000000000000001' is larger than 10**15"),
        ("1e101*x", "out of range"),
        ("1e0001*x", "out of range"),
        ("10**50*10**51*x", "grows beyond 10**100"),
        ("Max(a, b, c, d, f, g, h, k) + Min(m, n, p, q, r)", "at most 8 arguments"),
        ("exp(200*log(3))", "log and a number larger than 100"),
        ("x/0", "undefined or complex"),
        ("sin(x, y)", "sin takes 1 argument(s)"),
        ("Max(x)", "Max takes 2 to 8 argument(s)"),
        ("log(x, 2, 3)", "log takes 1 to 2 argument(s)"),
        ("sqrt", "must be called"),
        ("f(x)", "the name 'f' is not an allowed function"),
        ("gamma*x", "the name 'gamma' is reserved"),
        ("x_" + "a" * 70, "at most 64 characters"),
        ("x +", "not a valid expression"),
        ("'text'", "type str"),
        ("x.real", "an attribute"),
        ("x ^ 2", "the operator ^ (write **)"),
        ("x % 2", "the operator %"),
        ("lambda: 1", "the syntax Lambda"),
        ("\u00e9t\u00e9", "printable ASCII"),
    ],
)
def test_limit_is_explained(text, reason):
    with pytest.raises(FormulaError, match="^Formula of output 'out': ") as caught:
        parse(text, "out")
    assert reason in str(caught.value)


def test_limits_leave_room_for_real_formulas():
    assert parse(" + ".join(f"{i}*x**{i}" for i in range(80))).is_Add  # long sums are flat, not deep
    assert parse("-(" * 29 + "x" + ")" * 29) == -sympy.Symbol("x", real=True)
    assert parse("Max(a, b, c, d) + Min(h, k, m, n)")
    assert parse("2**100*x") and parse("x**100 + x**-100") and parse("1e100*x")
    assert parse("x # a comment is not code: __import__('os')") == sympy.Symbol("x", real=True)


ELEVEN_INPUTS = " + ".join(f"x{j}" for j in range(11))


@pytest.mark.parametrize(
    "options, reason",
    [
        ([], "must be an object"),
        ({}, "must map 1 to 100 output names"),
        ({"expressions": {}}, "must map 1 to 100 output names"),
        ({"expressions": {f"y{i}": "x" for i in range(101)}}, "must map 1 to 100 output names"),
        ({"expressions": "x**2"}, "Option 'expressions' of AnalyticDiscipline must be an object"),
        ({"expressions": {"y": "x"}, "name": 3}, "Option 'name' of AnalyticDiscipline must be a string"),
        ({"expressions": {"y": "x"}, "name": "n\n"}, "Option 'name' must be printable"),
        ({"expressions": {"y": "x"}, "fast_evaluation": True}, "Unknown option 'fast_evaluation'"),
        ({"expressions": {"y": "x"}, "x" * 100: 1}, "Unknown option 'xxxxxxxx"),
        ({"expressions": {"y": 3}}, "Formula of output 'y': it must be a string"),
        ({"expressions": {"y": ["x"]}}, "Formula of output 'y': it must be a string"),
        ({"expressions": {"_y": "x"}}, "Output name '_y' is not allowed"),
        ({"expressions": {"y-1": "x"}}, "Output name 'y-1' is not allowed"),
        ({"expressions": {"y" * 65: "x"}}, "is not allowed"),
        ({"expressions": {"\uff59": "x"}}, "is not allowed"),
        ({"expressions": {"y": "x", "z": "__import__('os')"}}, "Formula of output 'z': the name '__import__'"),
        ({"expressions": {f"y{i}": ELEVEN_INPUTS for i in range(19)}}, "more than 200 partial derivatives"),
        # Each Min or Max argument costs GEMSEO about 0.2 s to differentiate: 20 such outputs took 30 s.
        ({"expressions": {f"y{i}": "Max(x, y, z, x*y, y*z, x*z, x+y, y+z)" for i in range(3)}}, "at most 16 arguments in all"),
    ],
)
def test_bad_options_are_refused(options, reason):
    with pytest.raises(FormulaError) as caught:
        checked_options(options)
    assert reason in str(caught.value) and len(str(caught.value)) < 200


def test_checked_options_copy_the_rest():
    options = {"expressions": {"y": "x**2", "z": "2*x + w"}, "name": "square"}
    checked = checked_options(options)
    assert checked["name"] == "square" and options["expressions"]["y"] == "x**2"
    assert checked["expressions"]["y"] == sympy.Symbol("x", real=True) ** 2
    discipline = create_discipline("AnalyticDiscipline", **checked)
    assert discipline.name == "square" and sorted(discipline.io.input_grammar.names) == ["w", "x"]


def test_options_are_those_of_the_constructor():
    """A new GEMSEO parameter is refused until it is reviewed here."""
    parameters = inspect.signature(AnalyticDiscipline.__init__).parameters
    assert set(parameters) - {"self"} == set(formulas.OPTIONS)


def test_float_inputs():
    data = {
        "i": numpy.array([10]),
        "u": numpy.array([3], dtype=numpy.uint8),
        "b": numpy.array([True]),
        "o": numpy.array([10**30], dtype=object),
        "n": 7,
        "t": True,
        "g": numpy.int64(2),
        "f": numpy.array([0.5]),
        "c": numpy.array([1j]),
    }
    cast = float_inputs(data)
    for name in "iubongt":
        assert numpy.asarray(cast[name]).dtype == numpy.float64, name
    assert cast["i"].tolist() == [10.0] and cast["n"] == 7.0 and cast["o"].tolist() == [1e30]
    assert cast["f"] is data["f"] and cast["c"] is data["c"]
    assert data["i"].dtype.kind == "i"  # the given data are left alone


def test_float_inputs_keep_integer_powers_cheap():
    discipline = create_discipline("AnalyticDiscipline", **checked_options({"expressions": {"y": "x**z"}}))
    data = float_inputs({"x": numpy.array([10]), "z": numpy.array([10**8])})
    with pytest.raises(OverflowError):  # at once, where Python integers would compute 10**10**8
        discipline.execute(data)
